/**
 * vLLM's --kv-events-config JSON (the keys of vllm/config/kv_events.py's KVEventsConfig),
 * validated into the simulator's publisher options. Errors are RangeErrors naming the key.
 */
import { KV_EVENT_ENCODINGS, type KvEventEncoding } from './kv-events-wire.js';

export interface KvEventsOptions {
  /** PUB endpoint; bound or connected by vLLM's rule (see pubBinds). */
  endpoint: string;
  /** ROUTER endpoint for replay requests, always bound; null for none. */
  replayEndpoint: string | null;
  /** First frame of every message; empty unless configured. */
  topic: string;
  /** Batches kept for replay (vLLM's buffer_steps). */
  bufferSteps: number;
  /** PUB send high-water mark (vLLM's hwm). */
  hwm: number;
  encoding: KvEventEncoding;
}

const DEFAULTS = { bufferSteps: 10_000, hwm: 100_000, topic: '' };

const KNOWN_KEYS = [
  'enable_kv_cache_events',
  'publisher',
  'endpoint',
  'replay_endpoint',
  'buffer_steps',
  'hwm',
  'max_queue_size',
  'topic',
] as const;

const SCHEMES = ['tcp://', 'ipc://', 'inproc://'];

function checkEndpoint(key: string, value: unknown): string {
  if (typeof value !== 'string' || !SCHEMES.some((s) => value.startsWith(s)) || value.length <= value.indexOf('://') + 3) {
    throw new RangeError(`${key} must be a ZMQ endpoint (tcp://HOST:PORT, ipc://PATH or inproc://NAME), got ${JSON.stringify(value)}`);
  }
  if (value.startsWith('tcp://') && !/^tcp:\/\/.+:(\d+|\*)$/.test(value)) {
    throw new RangeError(`${key} must name a port (tcp://HOST:PORT), got ${JSON.stringify(value)}`);
  }
  return value;
}

function positiveInteger(key: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`${key} must be an integer >= 1, got ${JSON.stringify(value)}`);
  }
  return value;
}

/**
 * Parses the JSON text of --kv-events-config. Null when events are off (not enabled, or the
 * "null" publisher). Unlike vLLM, no default endpoint: vLLM's tcp://*:5557 binds every interface.
 */
export function parseKvEventsConfig(json: string, encoding: KvEventEncoding = 'maps'): KvEventsOptions | null {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new RangeError(`must be valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new RangeError(`must be a JSON object, got ${JSON.stringify(raw)}`);
  }
  const config = raw as Record<string, unknown>;
  const unknown = Object.keys(config).find((k) => !(KNOWN_KEYS as readonly string[]).includes(k));
  if (unknown !== undefined) throw new RangeError(`unknown key '${unknown}' (known: ${KNOWN_KEYS.join(', ')})`);

  const enabled = config['enable_kv_cache_events'] ?? false;
  if (typeof enabled !== 'boolean') throw new RangeError(`enable_kv_cache_events must be true or false, got ${JSON.stringify(enabled)}`);
  const publisher = config['publisher'] ?? (enabled ? 'zmq' : 'null');
  if (publisher !== 'zmq' && publisher !== 'null') {
    throw new RangeError(`publisher must be "zmq" or "null", got ${JSON.stringify(publisher)}`);
  }
  const topic = config['topic'] ?? DEFAULTS.topic;
  if (typeof topic !== 'string') throw new RangeError(`topic must be a string, got ${JSON.stringify(topic)}`);
  const bufferSteps = config['buffer_steps'] === undefined ? DEFAULTS.bufferSteps : positiveInteger('buffer_steps', config['buffer_steps']);
  const hwm = config['hwm'] === undefined ? DEFAULTS.hwm : positiveInteger('hwm', config['hwm']);
  // Accepted for compatibility: the simulator publishes from its own thread, with no queue.
  if (config['max_queue_size'] !== undefined) positiveInteger('max_queue_size', config['max_queue_size']);
  const replay = config['replay_endpoint'] ?? null;
  const replayEndpoint = replay === null ? null : checkEndpoint('replay_endpoint', replay);
  if (config['endpoint'] !== undefined) checkEndpoint('endpoint', config['endpoint']);

  if (!enabled || publisher === 'null') return null;
  if (config['endpoint'] === undefined) {
    throw new RangeError('endpoint is required (e.g. ipc:///tmp/kv-events.sock or tcp://127.0.0.1:5557)');
  }
  if (!KV_EVENT_ENCODINGS.includes(encoding)) throw new RangeError(`encoding must be one of ${KV_EVENT_ENCODINGS.join(', ')}`);
  return { endpoint: config['endpoint'] as string, replayEndpoint, topic, bufferSteps, hwm, encoding };
}

/** vLLM's rule for the PUB socket: bind on a wildcard, IPv6 or local transport, else connect. */
export function pubBinds(endpoint: string): boolean {
  return endpoint.includes('*') || endpoint.includes('::') || endpoint.startsWith('ipc://') || endpoint.startsWith('inproc://');
}
