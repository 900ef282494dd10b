import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/load.js';
import { ERRORS } from '../contract/errors.js';
import type { BackendView } from '../fleet/backend.js';
import { backendView, vllmLoad, type MutableBackendView } from '../../test/helpers/backend-view.js';
import { createSchedulerMemory } from './memory.js';
import { schedulerFromConfig } from './registry.js';
import type { SchedulingRequest } from './types.js';

const metrics = (running: number, waiting: number) => vllmLoad(running, waiting);
type Mutable = MutableBackendView;
const backend = backendView;

const SYSTEM = 'You are a meticulous assistant. '.repeat(250); // ~2000 tokens
const chat = (system: string, question: string): SchedulingRequest => ({
  model: 'm',
  stream: true,
  prompt: { kind: 'text', bytes: Buffer.from(JSON.stringify([{ role: 'system', content: system }, { role: 'user', content: question }])) },
});

let seed = 7;
const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
const ours = (extra: Record<string, unknown> = {}) => {
  const config = parseConfig({ scheduler: extra });
  return schedulerFromConfig(config, createSchedulerMemory(config), random);
};

function route(s: ReturnType<typeof ours>, request: SchedulingRequest, fleet: BackendView[]) {
  const d = s.schedule(request, fleet);
  if (d.kind !== 'route') throw new Error(d.code);
  return d.primary as Mutable;
}

describe('first-token-cost scheduler (the default)', () => {
  it('sends a prompt back to the backend that holds its prefix', () => {
    const s = ours();
    const fleet = [backend('a'), backend('b'), backend('c')];
    const first = route(s, chat(SYSTEM, 'question one'), fleet);
    for (let i = 0; i < 5; i++) expect(route(s, chat(SYSTEM, `question ${i + 2}`), fleet).id).toBe(first.id);
    // The decision says why: most of the prompt was already there.
    const d = s.schedule(chat(SYSTEM, 'question seven'), fleet);
    expect(d.kind === 'route' && d.why.cachedTokens / d.why.promptTokens).toBeGreaterThan(0.9);
    expect(d.kind === 'route' && d.why.candidates).toBe(3);
  });

  it('leaves the cached backend once queueing there costs more than prefilling elsewhere', () => {
    const s = ours();
    const a = backend('a');
    const b = backend('b');
    expect(route(s, chat(SYSTEM, 'warm up'), [a, b]).id).toMatch(/a|b/);
    const holder = route(s, chat(SYSTEM, 'again'), [a, b]);
    const other = holder === a ? b : a;
    holder.metrics = metrics(6, 0); // busy but with free slots: the cache still wins
    expect(route(s, chat(SYSTEM, 'and now'), [a, b]).id).toBe(holder.id);
    holder.metrics = metrics(8, 2); // full and queueing: prefilling elsewhere is cheaper
    expect(route(s, chat(SYSTEM, 'now what'), [a, b]).id).toBe(other.id);
  });

  it('does not let one shared system prompt drag all traffic onto one server', () => {
    // A closed loop: each routed request occupies its backend until 4 later requests have been routed.
    const s = ours();
    const fleet = [backend('a'), backend('b'), backend('c'), backend('d')];
    const active: Mutable[] = [];
    const served = new Map<string, number>();
    for (let i = 0; i < 400; i++) {
      const b = route(s, chat(SYSTEM, `user ${i} asks something different`), fleet);
      served.set(b.id, (served.get(b.id) ?? 0) + 1);
      b.inflight++;
      active.push(b);
      if (active.length > 28) active.shift()!.inflight--;
    }
    const counts = [...served.values()];
    // 28 concurrent requests do not fit in one server's 8 slots: the prompt must be replicated...
    expect(counts.length).toBeGreaterThanOrEqual(3);
    expect(Math.max(...counts)).toBeLessThan(400 * 0.5);
  });

  it('balances prompts with no shared prefix by load', () => {
    const s = ours();
    const a = backend('a', { metrics: metrics(6, 0) });
    const b = backend('b', { metrics: metrics(1, 0) });
    const c = backend('c', { metrics: metrics(3, 0) });
    expect(route(s, { model: 'm', stream: false, prompt: { kind: 'text', bytes: Buffer.from(`unique ${Math.random()}`) } }, [a, b, c]).id).toBe('b');
  });

  it('balances unshared prompts by load when one cache looks fuller but its blocks are never hit', () => {
    // Real vLLM with its default 256 slots and small caches: how full each cache looks differs
    // from server to server; with nothing ever hit there, that must not outweigh their queues.
    const small = { ...metrics(0, 0), blockSize: 32, numGpuBlocks: 64 };
    const distinct = (i: number): SchedulingRequest => ({ model: 'm', stream: true, prompt: { kind: 'text', bytes: Buffer.from(`${i} ${random().toString(36)} `.repeat(80)) } });
    const fleetWith = (hitShare: number | undefined) => {
      const s = ours();
      const full = backend('a', { capacity: 256, metrics: small, recent: { prefixHitShare: hitShare, othersShare: undefined } });
      const half = backend('b', { capacity: 256, metrics: small, recent: { prefixHitShare: hitShare, othersShare: undefined } });
      for (let i = 0; i < 12; i++) route(s, distinct(i), [full]);
      for (let i = 12; i < 14; i++) route(s, distinct(i), [half]);
      half.inflight = 2;
      return route(s, distinct(99), [full, half]).id;
    };
    expect(fleetWith(0)).toBe('a');
    // Where its cache is hit, a fuller cache does cost evictions: the half-full one is worth
    // the delay it adds to its two running requests.
    expect(fleetWith(0.9)).toBe('b');
  });

  it('places a prompt nobody holds yet where every replica would, so replicas do not scatter it', () => {
    // Two router replicas, each with its own memory, and each with a request of its own in
    // flight on a different server: by load alone they would disagree on every new prompt.
    const replicaOne = ours();
    const replicaTwo = ours();
    const seenByOne = [backend('a', { inflight: 1 }), backend('b'), backend('c'), backend('d')];
    const seenByTwo = [backend('a'), backend('b', { inflight: 1 }), backend('c'), backend('d')];
    const homes = new Set<string>();
    for (let p = 0; p < 12; p++) {
      const system = `Prompt family ${p}: you answer in the voice of character number ${p}. `.repeat(40);
      const one = route(replicaOne, chat(system, 'first question'), seenByOne).id;
      expect(route(replicaTwo, chat(system, 'another question'), seenByTwo).id).toBe(one);
      homes.add(one);
    }
    expect(homes.size).toBeGreaterThan(2); // placement spreads prompts, it does not pile them up
  });

  it('places by load alone where prompts are not reused, and when the home is busy', () => {
    const unshared = { prefixHitShare: 0, othersShare: undefined };
    const fleet = () => [backend('a', { recent: unshared }), backend('b', { recent: unshared, inflight: 1 })];
    // With nothing reused, every prompt goes to the idle server, whatever its home.
    for (let p = 0; p < 8; p++) expect(route(ours(), chat(`Prompt family ${p}. `.repeat(60), 'q'), fleet()).id).toBe('a');
    // Reused prompts go home, unless the home is saturated.
    const reused = { prefixHitShare: 0.8, othersShare: undefined };
    const full = backend('a', { recent: reused, metrics: metrics(8, 3), queueing: true });
    const idle = backend('b', { recent: reused });
    for (let p = 0; p < 8; p++) expect(route(ours(), chat(`Prompt family ${p}. `.repeat(60), 'q'), [full, idle]).id).toBe('b');
  });

  it('counts requests routed since the last scrape, so a burst spreads', () => {
    const s = ours();
    const fleet = [backend('a'), backend('b')];
    for (let i = 0; i < 16; i++) {
      const b = route(s, { model: 'm', stream: false, prompt: { kind: 'text', bytes: Buffer.from(`distinct prompt number ${i} `.repeat(20)) } }, fleet);
      b.unseenDispatches++;
      b.inflight++;
    }
    expect(fleet.map((b) => b.inflight)).toEqual([8, 8]);
  });

  it('does not count requests that finished since the last scrape as load', () => {
    const s = ours();
    const quick = backend('a', { unseenDispatches: 10, inflight: 0 }); // answered them all already
    const busy = backend('b', { metrics: metrics(3, 0) });
    expect(route(s, { model: 'm', stream: false, prompt: { kind: 'text', bytes: Buffer.from('x') } }, [quick, busy]).id).toBe('a');
  });

  it('does not count requests seen in the last scrape that have finished since as load', () => {
    const s = ours();
    const text: SchedulingRequest = { model: 'm', stream: false, prompt: { kind: 'text', bytes: Buffer.from('x') } };
    // a was read with 3 running, all three ours, and all three have ended since; b holds one.
    const drained = backend('a', { metrics: metrics(3, 0), unseenFinishes: 3, inflight: 0 });
    const busy = backend('b', { metrics: metrics(1, 0), inflight: 1 });
    expect(route(s, text, [drained, busy]).id).toBe('a');
    // Finishes of requests sent after the scrape began were never in its figures.
    const sentSince = backend('c', { metrics: metrics(3, 0), unseenDispatches: 2, unseenFinishes: 2, inflight: 0 });
    expect(route(s, text, [sentSince, busy]).id).toBe('b');
  });

  it("judges a backend only this router sends to by its own in-flight count, not the server's trailing gauges", () => {
    const s = ours();
    const text: SchedulingRequest = { model: 'm', stream: false, prompt: { kind: 'text', bytes: Buffer.from('y') } };
    // The server's last figures say 3 running, but we hold nothing there, and it serves only us.
    const onlyOurs = backend('a', { metrics: metrics(3, 0), inflight: 0, recent: { prefixHitShare: undefined, othersShare: 0 } });
    const busy = backend('b', { metrics: metrics(1, 0), inflight: 1, recent: { prefixHitShare: undefined, othersShare: 0 } });
    expect(route(s, text, [onlyOurs, busy]).id).toBe('a');
    // Shared with other clients (another router replica sends most of its traffic), its figures stand.
    const shared = backend('c', { metrics: metrics(3, 0), inflight: 0, recent: { prefixHitShare: undefined, othersShare: 0.9 } });
    expect(route(s, text, [shared, busy]).id).toBe('b');
    // Work from elsewhere that has not completed yet is in no share: it shows as an excess that
    // lasts from one scrape to the next, where a trailing gauge's lasts one.
    const hogged = backend('d', { metrics: metrics(10, 0), inflight: 0, lastingExcess: 10, recent: { prefixHitShare: undefined, othersShare: 0 } });
    const idle = backend('e', { metrics: metrics(0, 0), inflight: 0, recent: { prefixHitShare: undefined, othersShare: 0 } });
    for (let i = 0; i < 5; i++) expect(route(s, text, [hogged, idle]).id).toBe('e');
  });

  it('treats one scrape of a waiting request as arrival, two as saturation', () => {
    const s = ours();
    const text = (t: string): SchedulingRequest => ({ model: 'm', stream: false, prompt: { kind: 'text', bytes: Buffer.from(t) } });
    const arriving = backend('a', { metrics: metrics(0, 1) });
    const busy = backend('b', { metrics: metrics(3, 0) });
    expect(route(s, text('one'), [arriving, busy]).id).toBe('a');
    const saturated = backend('c', { metrics: metrics(0, 1), queueing: true });
    expect(route(s, text('two'), [saturated, busy]).id).toBe('b');
  });

  it('sheds load with a 429 when every backend has reached the waiting limit', () => {
    const s = ours({ maxWaitingPerBackend: 2 });
    const text: SchedulingRequest = { model: 'm', stream: false, prompt: { kind: 'text', bytes: Buffer.from('x') } };
    const full = backend('a', { metrics: metrics(8, 3), queueing: true });
    const fuller = backend('b', { metrics: metrics(8, 5), queueing: true });
    const shed = s.schedule(text, [full, fuller]);
    expect(shed).toMatchObject({ kind: 'reject', code: 'server_overloaded' });
    expect(shed.kind === 'reject' && ERRORS[shed.code].status).toBe(429);
    const roomy = backend('c', { metrics: metrics(8, 1), queueing: true });
    expect(route(s, text, [full, fuller, roomy]).id).toBe('c');
    expect(route(ours(), text, [full, fuller]).id).toBe('a'); // no limit by default
  });

  it('keeps a session on its backend when session affinity is weighted in', () => {
    const s = ours({ scorers: [{ name: 'first-token-cost', weight: 1 }, { name: 'session-affinity', weight: 2 }] });
    const fleet = [backend('a'), backend('b'), backend('c')];
    const request = (text: string): SchedulingRequest => ({ model: 'm', stream: false, prompt: { kind: 'text', bytes: Buffer.from(text) }, sessionKey: 'user-42' });
    const first = route(s, request('completely unrelated prompt one'), fleet);
    first.metrics = metrics(3, 0); // somewhat busier, still the session's home
    for (const text of ['another topic', 'a third, different prompt']) expect(route(s, request(text), fleet).id).toBe(first.id);
  });
});
