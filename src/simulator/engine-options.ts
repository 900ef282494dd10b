/**
 * Knobs of the simulated vLLM engine. Defaults resemble an 8B model on one GPU, with a KV
 * pool and batch limits small enough that modest load already shows queueing.
 */
export interface EngineOptions {
  /** vLLM --max-num-seqs: most requests in the running batch. */
  maxNumSeqs: number;
  /** vLLM --max-num-batched-tokens: token budget of one step (chunked prefill). */
  maxNumBatchedTokens: number;
  /** vLLM --block-size: tokens per KV block. */
  blockSize: number;
  /** vLLM --num-gpu-blocks-override: size of the KV block pool. */
  numGpuBlocks: number;
  /** vLLM --max-model-len: prompt plus output limit. */
  maxModelLen: number;
  /** Fixed cost of one forward step, in ms. */
  stepBaseMs: number;
  /** Extra cost per prefilled (uncached) token in a step, in ms. */
  prefillMsPerToken: number;
  /** Extra cost per decoding sequence in a step, in ms. */
  decodeMsPerSeq: number;
  /** Multiplies every duration: 0.1 runs ten times faster than the modelled GPU. */
  timeScale: number;
  /** Varies generated text and default output lengths between fleets; same seed, same output. */
  seed: number;
  /** vLLM --max-loras: most LoRA adapters one batch may hold (one device slot each). */
  maxLoras: number;
  /** Loading an adapter into a slot (evicting the least recently used one), added to that step, in ms. */
  loraLoadMs: number;
}

export const DEFAULT_ENGINE_OPTIONS: Readonly<EngineOptions> = Object.freeze({
  maxNumSeqs: 64,
  maxNumBatchedTokens: 2048,
  blockSize: 16,
  numGpuBlocks: 4096,
  maxModelLen: 32768,
  stepBaseMs: 6,
  prefillMsPerToken: 0.05,
  decodeMsPerSeq: 0.15,
  timeScale: 1,
  seed: 0,
  maxLoras: 1,
  loraLoadMs: 20,
});

const POSITIVE_INTEGERS = ['maxNumSeqs', 'maxNumBatchedTokens', 'blockSize', 'numGpuBlocks', 'maxModelLen', 'maxLoras'] as const;
const NON_NEGATIVE_NUMBERS = ['stepBaseMs', 'prefillMsPerToken', 'decodeMsPerSeq', 'timeScale', 'loraLoadMs'] as const;

/** Fills defaults and rejects settings vLLM itself would refuse to start with. */
export function resolveEngineOptions(overrides: Partial<EngineOptions> = {}): EngineOptions {
  const options: EngineOptions = { ...DEFAULT_ENGINE_OPTIONS };
  for (const [key, value] of Object.entries(overrides) as [keyof EngineOptions, number | undefined][]) {
    if (value !== undefined) options[key] = value;
  }
  for (const key of POSITIVE_INTEGERS) {
    const value = options[key];
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(`engine option ${key} must be a positive integer, got ${String(value)}`);
    }
  }
  for (const key of NON_NEGATIVE_NUMBERS) {
    const value = options[key];
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new RangeError(`engine option ${key} must be a finite number >= 0, got ${String(value)}`);
    }
  }
  if (!Number.isSafeInteger(options.seed)) {
    throw new RangeError(`engine option seed must be an integer, got ${String(options.seed)}`);
  }
  // vLLM refuses to start when one max-length sequence cannot fit in the KV cache.
  const capacity = options.numGpuBlocks * options.blockSize;
  if (options.maxModelLen > capacity) {
    throw new RangeError(
      `max_model_len (${options.maxModelLen}) is larger than the maximum number of tokens that can be ` +
        `stored in KV cache (${capacity} = ${options.numGpuBlocks} blocks x ${options.blockSize}). ` +
        `Increase numGpuBlocks or decrease maxModelLen.`,
    );
  }
  return options;
}
