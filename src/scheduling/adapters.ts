import type { BackendView } from '../fleet/backend.js';
import type { Speed } from './service-time.js';

/**
 * LoRA adapters at work on each backend, as its metrics last said (vllm:lora_requests_info)
 * and as this router has sent since: a scrape is up to an interval old, and an adapter sent a
 * moment ago is as good as running there.
 */
export interface AdapterActivity {
  record(backend: string, adapter: string, nowMs: number): void;
  /** Adapters this router sent `backend` lately. */
  recent(backend: string, nowMs: number): readonly string[];
  retain(keep: ReadonlySet<string>): void;
}

/** How long an adapter sent to a backend counts as at work there without its metrics saying so. */
export const RECENT_ADAPTER_MS = 2_000;

export function createAdapterActivity(): AdapterActivity {
  const byBackend = new Map<string, Map<string, number>>();
  return {
    record(backend, adapter, now) {
      let sent = byBackend.get(backend);
      if (!sent) byBackend.set(backend, (sent = new Map()));
      sent.delete(adapter);
      sent.set(adapter, now);
    },
    recent(backend, now) {
      const sent = byBackend.get(backend);
      if (!sent) return [];
      // Kept in the order sent: the stale ones are first.
      for (const [adapter, at] of sent) {
        if (now - at <= RECENT_ADAPTER_MS) break;
        sent.delete(adapter);
      }
      return [...sent.keys()];
    },
    retain(keep) {
      for (const id of byBackend.keys()) if (!keep.has(id)) byBackend.delete(id);
    },
  };
}

/**
 * Loading an adapter into a free slot of a server's batch: its weights copied to the device
 * (from host memory, or from disk the first time). vLLM reports no load times, so this is a
 * prior, of the order of a few engine steps.
 */
export const ADAPTER_LOAD_S = 0.05;

export type AdapterState = 'active' | 'free-slot' | 'full' | 'unknown';

/** Where `adapter` stands on `backend`: at work, a free slot for it, every slot taken, or no LoRA figures. */
export function adapterState(backend: BackendView, adapter: string, recent: readonly string[]): AdapterState {
  const lora = backend.metrics?.lora;
  if (!lora) return recent.includes(adapter) ? 'active' : 'unknown';
  if (lora.running.includes(adapter) || lora.waiting.includes(adapter) || recent.includes(adapter)) return 'active';
  const inUse = new Set([...lora.running, ...recent]).size;
  return inUse < lora.maxLoras ? 'free-slot' : 'full';
}

/**
 * Seconds a request for `adapter` waits for it before its prefill can start: none where it is
 * at work, its load in a free slot, and where every slot is taken, also until one adapter's
 * requests are done (vLLM admits it only then): a running request's residence.
 */
export function adapterWaitS(state: AdapterState, speed: Speed): number {
  switch (state) {
    case 'active':
    case 'unknown':
      return 0;
    case 'free-slot':
      return ADAPTER_LOAD_S;
    case 'full':
      return ADAPTER_LOAD_S + speed.slotHoldS;
  }
}
