/** Command line of the simulator, in vLLM's flag names where vLLM has one. */
import { parseArgs } from 'node:util';
import type { EngineOptions } from './engine-options.js';
import { parseKvEventsConfig } from './kv-events-config.js';
import { KV_EVENT_ENCODINGS, type KvEventEncoding } from './kv-events-wire.js';
import type { SimulatorOptions } from './server.js';

export const USAGE = `usage: vllm-sim --model NAME [--model NAME ...] [--port 8000] [--host 127.0.0.1]
                [--time-scale 1] [--max-num-seqs 64] [--max-num-batched-tokens 2048]
                [--num-gpu-blocks 4096] [--block-size 16] [--max-model-len 32768] [--seed 0]
                [--kv-events-config JSON] [--kv-events-encoding maps|arrays]
                [--tokenizer MODEL_DIR]
                [--enable-lora --lora-modules NAME=PATH [NAME=PATH ...] [--max-loras 1] [--lora-load-ms 20]]`;

export class UsageError extends Error {}

const INTEGER_FLAGS = {
  'max-num-seqs': 'maxNumSeqs',
  'max-num-batched-tokens': 'maxNumBatchedTokens',
  'num-gpu-blocks': 'numGpuBlocks',
  'block-size': 'blockSize',
  'max-model-len': 'maxModelLen',
  'max-loras': 'maxLoras',
} as const satisfies Record<string, keyof EngineOptions>;

function parseInteger(flag: string, raw: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const value = /^-?\d+$/.test(raw.trim()) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`;
    throw new UsageError(`--${flag} must be an integer ${range}, got '${raw}'`);
  }
  return value;
}

/** Parses argv (without node and script) into simulator options; throws UsageError. */
/** vLLM takes `--lora-modules a=x b=y`: each value after the flag becomes a flag of its own here. */
function spreadLoraModules(argv: readonly string[]): string[] {
  const out: string[] = [];
  let inList = false;
  for (const arg of argv) {
    if (arg === '--lora-modules') inList = true;
    else if (arg.startsWith('-')) inList = false;
    else if (inList && out[out.length - 1] !== '--lora-modules') out.push('--lora-modules');
    out.push(arg);
  }
  return out;
}

/** One --lora-modules value: NAME=PATH, or vLLM's JSON form {"name": ..., "path": ...}. */
function parseLoraModule(raw: string): { name: string; path: string } {
  if (raw.trim().startsWith('{')) {
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (err) {
      throw new UsageError(`--lora-modules: ${err instanceof Error ? err.message : String(err)}`);
    }
    const { name, path } = value as { name?: unknown; path?: unknown };
    if (typeof name === 'string' && name !== '' && typeof path === 'string' && path !== '') return { name, path };
    throw new UsageError(`--lora-modules: a JSON module needs "name" and "path" strings, got '${raw}'`);
  }
  const at = raw.indexOf('=');
  if (at <= 0 || at === raw.length - 1) throw new UsageError(`--lora-modules takes NAME=PATH, got '${raw}'`);
  return { name: raw.slice(0, at), path: raw.slice(at + 1) };
}

export function parseCliArgs(argv: readonly string[]): SimulatorOptions | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: spreadLoraModules(argv),
      strict: true,
      allowPositionals: false,
      options: {
        help: { type: 'boolean', short: 'h' },
        host: { type: 'string' },
        port: { type: 'string' },
        model: { type: 'string', multiple: true },
        'served-model-name': { type: 'string', multiple: true },
        'time-scale': { type: 'string' },
        seed: { type: 'string' },
        'kv-events-config': { type: 'string' },
        'kv-events-encoding': { type: 'string' },
        tokenizer: { type: 'string' },
        'enable-lora': { type: 'boolean' },
        'lora-modules': { type: 'string', multiple: true },
        'lora-load-ms': { type: 'string' },
        ...Object.fromEntries(Object.keys(INTEGER_FLAGS).map((flag) => [flag, { type: 'string' as const }])),
      },
    }));
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  if (values.help) return 'help';
  const models = [...(values.model ?? []), ...((values['served-model-name'] as string[] | undefined) ?? [])];
  if (models.length === 0) throw new UsageError('at least one --model NAME is required');
  const empty = models.find((m) => m.trim() === '');
  if (empty !== undefined) throw new UsageError('--model must not be empty');
  const duplicate = models.find((m, i) => models.indexOf(m) !== i);
  if (duplicate !== undefined) throw new UsageError(`--model '${duplicate}' given more than once`);

  const engine: Partial<EngineOptions> = {};
  for (const [flag, key] of Object.entries(INTEGER_FLAGS)) {
    const raw = (values as Record<string, unknown>)[flag];
    if (typeof raw === 'string') engine[key] = parseInteger(flag, raw, 1);
  }
  const timeScale = values['time-scale'];
  if (timeScale !== undefined) {
    const value = Number(timeScale);
    if (timeScale.trim() === '' || !Number.isFinite(value) || value < 0) {
      throw new UsageError(`--time-scale must be a number >= 0, got '${timeScale}'`);
    }
    engine.timeScale = value;
  }
  if (values.seed !== undefined) engine.seed = parseInteger('seed', values.seed, 0);
  const loadMs = values['lora-load-ms'];
  if (loadMs !== undefined) {
    const value = Number(loadMs);
    if (loadMs.trim() === '' || !Number.isFinite(value) || value < 0) throw new UsageError(`--lora-load-ms must be a number >= 0, got '${loadMs}'`);
    engine.loraLoadMs = value;
  }

  const options: SimulatorOptions = { models, engine };
  const loraModules = (values['lora-modules'] ?? []).map(parseLoraModule);
  if (values['enable-lora']) options.loraModules = loraModules;
  else if (loraModules.length > 0) throw new UsageError('--lora-modules needs --enable-lora');
  const dupe = loraModules.find((m, i) => loraModules.findIndex((o) => o.name === m.name) !== i);
  if (dupe) throw new UsageError(`--lora-modules: '${dupe.name}' given more than once`);
  const kvEvents = parseKvEventsFlags(values['kv-events-config'], values['kv-events-encoding']);
  if (kvEvents) options.kvEvents = kvEvents;
  if (values.tokenizer !== undefined) {
    if (values.tokenizer.trim() === '') throw new UsageError('--tokenizer must name a model directory');
    options.tokenizer = values.tokenizer;
  }
  if (values.port !== undefined) options.port = parseInteger('port', values.port, 0, 65535);
  if (values.host !== undefined) {
    if (values.host.trim() === '') throw new UsageError('--host must not be empty');
    options.host = values.host;
  }
  return options;
}

function parseKvEventsFlags(config: string | undefined, encoding: string | undefined): SimulatorOptions['kvEvents'] {
  if (encoding !== undefined && !(KV_EVENT_ENCODINGS as readonly string[]).includes(encoding)) {
    throw new UsageError(`--kv-events-encoding must be one of ${KV_EVENT_ENCODINGS.join(', ')}, got '${encoding}'`);
  }
  if (config === undefined) {
    if (encoding !== undefined) throw new UsageError('--kv-events-encoding needs --kv-events-config');
    return undefined;
  }
  try {
    return parseKvEventsConfig(config, encoding as KvEventEncoding | undefined) ?? undefined;
  } catch (err) {
    throw new UsageError(`--kv-events-config: ${err instanceof Error ? err.message : String(err)}`);
  }
}
