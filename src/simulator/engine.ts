/**
 * Discrete model of vLLM's V1 engine core: a continuous-batching scheduler over a paged,
 * prefix-cached KV pool, advancing in forward steps whose duration depends on the batch.
 *
 * Each step, as in vllm/v1/core/sched/scheduler.py:
 *  1. running requests are scheduled first, in order: decoding ones need one token, ones still
 *     prefilling take the next chunk of the remaining token budget; when KV blocks run out the
 *     newest running request is preempted (blocks freed, recomputed later);
 *  2. if nothing was preempted, waiting requests are admitted FCFS while the batch has room,
 *     reusing their longest cached prefix and allocating blocks for the scheduled chunk.
 * A request samples a token at the end of every step that leaves all its tokens computed.
 */
import { createRealClock, type Cancel, type Clock } from './clock.js';
import { resolveEngineOptions, type EngineOptions } from './engine-options.js';
import { hashBlockTokens, ROOT_BLOCK_HASH } from './hash.js';
import { createKvCache, type KvCache, type KvEvents } from './kv-cache.js';

export type FinishReason = 'stop' | 'length' | 'abort';

export interface EngineRequest {
  requestId: string;
  /** Served model name the client asked for; only counted. */
  model: string;
  promptTokenIds: readonly number[];
  /** Planned output; the request finishes once all of it is generated. */
  outputTokenIds: readonly number[];
  /** Reported when the plan completes: 'stop' if it ends in a stop token, else 'length'. */
  finishReason: 'stop' | 'length';
  /** The LoRA adapter it runs with; its KV blocks are keyed apart from the base model's. */
  lora?: string;
}

/** Times in clock milliseconds. */
export interface RequestTimings {
  arrivalMs: number;
  scheduledMs: number | null;
  firstTokenMs: number | null;
  lastTokenMs: number | null;
  finishedMs: number;
}

export interface FinishedRequest {
  requestId: string;
  model: string;
  finishReason: FinishReason;
  promptTokens: number;
  outputTokens: number;
  /** Prompt tokens served from the prefix cache when first scheduled. */
  cachedTokens: number;
  timings: RequestTimings;
}

export interface RequestListener {
  /** Output token `index` (0-based) was generated. */
  onToken(index: number, tokenId: number): void;
  /** Called once, after the last token or on abort. */
  onFinish(result: FinishedRequest): void;
}

/** Hooks for metrics; times are in seconds of the clock. */
export interface EngineObserver {
  onFirstToken?(ttftSeconds: number): void;
  onInterToken?(itlSeconds: number): void;
  onFinish?(result: FinishedRequest): void;
  onStep?(scheduledTokens: number): void;
}

export interface EngineStats {
  /** As of the last step's end while steps run (vLLM's gauges), else now. */
  running: number;
  waiting: number;
  kvCacheUsage: number;
  /** Prompt tokens of requests that produced their first token (vllm:prompt_tokens). */
  promptTokens: number;
  /** Of those, the tokens found in the prefix cache (vllm:prompt_tokens_cached). */
  promptTokensCached: number;
  generationTokens: number;
  prefixCacheQueries: number;
  prefixCacheHits: number;
  numPreemptions: number;
  requestsTotal: number;
  requestsByModel: Record<string, number>;
  requestsByFinishReason: Record<FinishReason, number>;
  steps: number;
  /** Adapters of the running requests, and of the waiting ones (vllm:lora_requests_info). */
  runningLoras: string[];
  waitingLoras: string[];
  /** Adapters loaded into a device slot so far (each load slowed its step by loraLoadMs). */
  loraLoads: number;
}

export interface Engine {
  readonly options: EngineOptions;
  /** KV block stored / removed / cleared events (vLLM KV events, without the ZMQ transport). */
  readonly kvEvents: KvEvents;
  addRequest(request: EngineRequest, listener: RequestListener): void;
  /** Aborts a waiting or running request, freeing its slot and blocks; false if unknown. */
  abort(requestId: string): boolean;
  abortAll(): void;
  /** Drops the prefix cache (vLLM's /reset_prefix_cache); false while requests hold blocks. */
  resetPrefixCache(): boolean;
  stats(): EngineStats;
  /** Aborts everything, cancels the step timer and refuses further requests. */
  stop(): void;
}

export interface EngineDeps {
  clock?: Clock;
  observer?: EngineObserver;
}

interface Sequence {
  request: EngineRequest;
  listener: RequestListener;
  /** Prompt followed by the tokens generated so far. */
  tokens: number[];
  numPrompt: number;
  numGenerated: number;
  numComputed: number;
  blocks: number[];
  /** Chained hashes of the full blocks of `tokens`, filled lazily. */
  blockHashes: number[];
  /** Leading blocks already registered in the prefix cache. */
  numCommittedBlocks: number;
  status: 'waiting' | 'running' | 'done';
  cachedTokens: number | null;
  timings: Omit<RequestTimings, 'finishedMs'>;
}

interface ScheduledChunk {
  seq: Sequence;
  numTokens: number;
}

/** Where an adapter's chain of block hashes starts: apart from the base model's and each other's. */
function rootHash(lora: string | undefined): number {
  if (lora === undefined) return ROOT_BLOCK_HASH;
  let h = ROOT_BLOCK_HASH;
  for (let i = 0; i < lora.length; i++) h = (h * 31 + lora.charCodeAt(i)) % 2 ** 48;
  return h;
}

const distinctLoras = (seqs: readonly Sequence[]) => [...new Set(seqs.flatMap((s) => (s.request.lora === undefined ? [] : [s.request.lora])))];

export function createEngine(overrides: Partial<EngineOptions> = {}, deps: EngineDeps = {}): Engine {
  const options = resolveEngineOptions(overrides);
  const clock = deps.clock ?? createRealClock();
  const observer = deps.observer ?? {};
  const { blockSize, maxNumSeqs, maxNumBatchedTokens, maxModelLen } = options;
  const kv: KvCache = createKvCache({ numBlocks: options.numGpuBlocks, blockSize });

  const waiting: Sequence[] = [];
  const running: Sequence[] = [];
  const byId = new Map<string, Sequence>();
  const counters = {
    promptTokens: 0,
    promptTokensCached: 0,
    generationTokens: 0,
    prefixCacheQueries: 0,
    prefixCacheHits: 0,
    numPreemptions: 0,
    requestsTotal: 0,
    steps: 0,
    loraLoads: 0,
  };
  /** Adapters in the device's slots, least recently used first. */
  const loadedLoras: string[] = [];
  const requestsByModel: Record<string, number> = {};
  const requestsByFinishReason: Record<FinishReason, number> = { stop: 0, length: 0, abort: 0 };

  let stepTimer: Cancel | null = null;
  let stopped = false;
  /**
   * The running and waiting counts as of the last step's end, as vLLM reports them (its
   * scheduler's stats come with each step's output): a request that arrived during a step
   * shows as neither until the next step schedules it.
   */
  const gauges = { running: 0, waiting: 0 };
  let arrivedSinceSchedule = 0;
  /** End of the last step, the start of the next one: steps chain on absolute deadlines. */
  let lastDeadline = 0;

  function ensureBlockHashes(seq: Sequence, numBlocks: number): void {
    const hashes = seq.blockHashes;
    while (hashes.length < numBlocks) {
      const i = hashes.length;
      const parent = i === 0 ? rootHash(seq.request.lora) : (hashes[i - 1] as number);
      hashes.push(hashBlockTokens(parent, seq.tokens, i * blockSize, (i + 1) * blockSize));
    }
  }

  function blocksFor(tokens: number): number {
    return Math.ceil(tokens / blockSize);
  }

  /** Grows seq's blocks to hold numComputed + numNew tokens; false if the pool is short. */
  function allocateSlots(seq: Sequence, numNew: number, reused: readonly number[] = []): boolean {
    const needed = blocksFor(seq.numComputed + numNew) - seq.blocks.length - reused.length;
    const fresh = kv.allocate(Math.max(0, needed), reused);
    if (!fresh) return false;
    seq.blocks.push(...reused, ...fresh);
    return true;
  }

  /**
   * Registers the blocks that `upTo` tokens fill in the prefix cache and reports them. As vLLM
   * (KVCacheManager.allocate_slots), when they are scheduled, not once computed: a request
   * scheduled with or after one that is prefilling a prefix finds it cached.
   */
  function cacheFullBlocks(seq: Sequence, upTo: number): void {
    const numFull = Math.floor(Math.min(upTo, seq.tokens.length) / blockSize);
    if (numFull <= seq.numCommittedBlocks) return;
    ensureBlockHashes(seq, numFull);
    const stored: number[] = [];
    const firstNew = seq.numCommittedBlocks;
    let firstStored = -1;
    for (let i = firstNew; i < numFull; i++) {
      const hash = seq.blockHashes[i] as number;
      if (kv.cacheBlock(seq.blocks[i] as number, hash)) {
        if (firstStored < 0) firstStored = i;
        stored.push(hash);
      } else if (stored.length > 0) {
        emitStored(seq, firstStored, stored.splice(0));
        firstStored = -1;
      }
    }
    seq.numCommittedBlocks = numFull;
    if (stored.length > 0) emitStored(seq, firstStored, stored);
  }

  function emitStored(seq: Sequence, firstBlock: number, hashes: number[]): void {
    if (kv.events.listenerCount('stored') === 0) return;
    kv.events.emit('stored', {
      blockHashes: hashes,
      parentBlockHash: firstBlock === 0 ? null : (seq.blockHashes[firstBlock - 1] as number),
      tokenIds: seq.tokens.slice(firstBlock * blockSize, (firstBlock + hashes.length) * blockSize),
      blockSize,
      lora: seq.request.lora ?? null,
    });
  }

  function releaseBlocks(seq: Sequence): void {
    kv.free(seq.blocks);
    seq.blocks = [];
    seq.numComputed = 0;
    seq.numCommittedBlocks = 0;
  }

  function remove<T>(list: T[], item: T): boolean {
    const i = list.indexOf(item);
    if (i < 0) return false;
    list.splice(i, 1);
    return true;
  }

  function finish(seq: Sequence, reason: FinishReason, nowMs: number): void {
    if (seq.status === 'running') remove(running, seq);
    else if (seq.status === 'waiting') remove(waiting, seq);
    if (seq.blocks.length > 0) releaseBlocks(seq);
    seq.status = 'done';
    byId.delete(seq.request.requestId);
    counters.requestsTotal++;
    requestsByModel[seq.request.model] = (requestsByModel[seq.request.model] ?? 0) + 1;
    requestsByFinishReason[reason]++;
    const result: FinishedRequest = {
      requestId: seq.request.requestId,
      model: seq.request.model,
      finishReason: reason,
      promptTokens: seq.numPrompt,
      outputTokens: seq.numGenerated,
      cachedTokens: seq.cachedTokens ?? 0,
      timings: { ...seq.timings, finishedMs: nowMs },
    };
    observer.onFinish?.(result);
    seq.listener.onFinish(result);
  }

  function preemptNewest(): Sequence | undefined {
    const victim = running.pop();
    if (!victim) return undefined;
    releaseBlocks(victim);
    victim.status = 'waiting';
    waiting.unshift(victim);
    counters.numPreemptions++;
    return victim;
  }

  function schedule(nowMs: number): ScheduledChunk[] {
    const plan: ScheduledChunk[] = [];
    let budget = maxNumBatchedTokens;
    let preempted = false;

    for (let i = 0; i < running.length && budget > 0; ) {
      const seq = running[i] as Sequence;
      const numNew = Math.min(seq.tokens.length - seq.numComputed, budget);
      let scheduled = true;
      while (!allocateSlots(seq, numNew)) {
        const victim = preemptNewest();
        preempted = true;
        if (victim === seq || victim === undefined) {
          scheduled = false;
          break;
        }
      }
      if (!scheduled) break;
      cacheFullBlocks(seq, seq.numComputed + numNew);
      plan.push({ seq, numTokens: numNew });
      budget -= numNew;
      i++;
    }

    // As vLLM's scheduler: a batch holds at most max_loras adapters; a waiting request for
    // another one is skipped (it keeps its place) until an adapter has no request running.
    const batchLoras = new Set<string>();
    for (const seq of running) if (seq.request.lora !== undefined) batchLoras.add(seq.request.lora);
    for (let w = 0; !preempted && budget > 0 && w < waiting.length && running.length < maxNumSeqs; ) {
      const seq = waiting[w] as Sequence;
      const lora = seq.request.lora;
      if (lora !== undefined && !batchLoras.has(lora) && batchLoras.size >= options.maxLoras) {
        w++;
        continue;
      }
      // At least the last token is always computed, so at most numTokens - 1 come from cache.
      const maxHitBlocks = Math.floor((seq.tokens.length - 1) / blockSize);
      ensureBlockHashes(seq, maxHitBlocks);
      const hitBlocks = kv.findPrefix(seq.blockHashes, maxHitBlocks);
      const hitTokens = hitBlocks.length * blockSize;
      const numNew = Math.min(seq.tokens.length - hitTokens, budget);
      seq.numComputed = hitTokens;
      if (!allocateSlots(seq, numNew, hitBlocks)) {
        seq.numComputed = 0;
        break;
      }
      seq.numCommittedBlocks = hitBlocks.length;
      counters.prefixCacheQueries += seq.tokens.length;
      counters.prefixCacheHits += hitTokens;
      if (seq.cachedTokens === null) seq.cachedTokens = hitTokens;
      // A step starts at the last deadline, which a request that arrived late in it postdates.
      if (seq.timings.scheduledMs === null) seq.timings.scheduledMs = Math.max(nowMs, seq.timings.arrivalMs);
      waiting.splice(w, 1);
      if (lora !== undefined) batchLoras.add(lora);
      seq.status = 'running';
      running.push(seq);
      cacheFullBlocks(seq, seq.numComputed + numNew);
      plan.push({ seq, numTokens: numNew });
      budget -= numNew;
    }
    return plan;
  }

  /** Milliseconds of loading the plan's adapters that are not in a device slot, evicting the least recently used. */
  function loadLoras(plan: readonly ScheduledChunk[]): number {
    let loads = 0;
    for (const { seq } of plan) {
      const lora = seq.request.lora;
      if (lora === undefined) continue;
      const at = loadedLoras.indexOf(lora);
      if (at >= 0) loadedLoras.splice(at, 1);
      else loads++;
      loadedLoras.push(lora);
      if (loadedLoras.length > options.maxLoras) loadedLoras.shift();
    }
    counters.loraLoads += loads;
    return loads * options.loraLoadMs;
  }

  function stepDurationMs(plan: readonly ScheduledChunk[]): number {
    let prefillTokens = 0;
    let decodeSeqs = 0;
    for (const { seq, numTokens } of plan) {
      const isDecode = numTokens === 1 && seq.numGenerated > 0 && seq.numComputed === seq.tokens.length - 1;
      if (isDecode) decodeSeqs++;
      else prefillTokens += numTokens;
    }
    const ms = options.stepBaseMs + options.prefillMsPerToken * prefillTokens + options.decodeMsPerSeq * decodeSeqs + loadLoras(plan);
    return ms * options.timeScale;
  }

  function commit(plan: readonly ScheduledChunk[], nowMs: number): void {
    counters.steps++;
    let scheduledTokens = 0;
    for (const { seq, numTokens } of plan) {
      scheduledTokens += numTokens;
      if (seq.status !== 'running') continue; // aborted while the step ran
      seq.numComputed += numTokens;
      if (seq.numComputed < seq.tokens.length) continue; // prefill chunk, no token yet
      const index = seq.numGenerated;
      const tokenId = seq.request.outputTokenIds[index] as number;
      seq.tokens.push(tokenId);
      seq.numGenerated++;
      counters.generationTokens++;
      if (seq.timings.firstTokenMs === null) {
        seq.timings.firstTokenMs = nowMs;
        counters.promptTokens += seq.numPrompt;
        counters.promptTokensCached += Math.min(seq.cachedTokens ?? 0, seq.numPrompt);
        observer.onFirstToken?.((nowMs - seq.timings.arrivalMs) / 1000);
      } else if (seq.timings.lastTokenMs !== null) {
        observer.onInterToken?.((nowMs - seq.timings.lastTokenMs) / 1000);
      }
      seq.timings.lastTokenMs = nowMs;
      seq.listener.onToken(index, tokenId);
      if (seq.numGenerated >= seq.request.outputTokenIds.length && seq.status === 'running') {
        finish(seq, seq.request.finishReason, nowMs);
      }
    }
    observer.onStep?.(scheduledTokens);
  }

  function runStep(): void {
    stepTimer = null;
    if (stopped) return;
    const plan = schedule(lastDeadline);
    arrivedSinceSchedule = 0;
    if (plan.length === 0) return; // idle until the next request arrives
    const deadline = lastDeadline + stepDurationMs(plan);
    stepTimer = clock.after(deadline - clock.now(), () => {
      lastDeadline = deadline;
      // stepTimer stays set while committing, so requests added from listeners join the
      // next step instead of starting a second step chain.
      commit(plan, deadline);
      gauges.running = running.length;
      gauges.waiting = Math.max(0, waiting.length - arrivedSinceSchedule);
      runStep();
    });
  }

  function abortAll(): void {
    for (const seq of [...running, ...waiting]) {
      if (seq.status !== 'done') finish(seq, 'abort', clock.now());
    }
  }

  function kick(): void {
    if (stepTimer !== null || stopped) return;
    lastDeadline = clock.now();
    // Start on a fresh tick so requests arriving together share the first step.
    stepTimer = clock.after(0, runStep);
  }

  return {
    options,
    kvEvents: kv.events,
    addRequest(request, listener) {
      const numPrompt = request.promptTokenIds.length;
      const numOutput = request.outputTokenIds.length;
      if (stopped) throw new Error('engine is stopped');
      if (byId.has(request.requestId)) throw new Error(`duplicate request id ${request.requestId}`);
      if (numPrompt < 1) throw new RangeError('prompt must contain at least one token');
      if (numOutput < 1) throw new RangeError('output must contain at least one token');
      if (numPrompt + numOutput > maxModelLen) {
        throw new RangeError(`prompt (${numPrompt}) + output (${numOutput}) exceeds max_model_len ${maxModelLen}`);
      }
      const seq: Sequence = {
        request,
        listener,
        tokens: Array.from(request.promptTokenIds),
        numPrompt,
        numGenerated: 0,
        numComputed: 0,
        blocks: [],
        blockHashes: [],
        numCommittedBlocks: 0,
        status: 'waiting',
        cachedTokens: null,
        timings: { arrivalMs: clock.now(), scheduledMs: null, firstTokenMs: null, lastTokenMs: null },
      };
      byId.set(request.requestId, seq);
      waiting.push(seq);
      arrivedSinceSchedule++;
      kick();
    },
    abort(requestId) {
      const seq = byId.get(requestId);
      if (!seq || seq.status === 'done') return false;
      finish(seq, 'abort', clock.now());
      return true;
    },
    abortAll,
    resetPrefixCache: () => kv.resetPrefixCache(),
    stats() {
      // Idle (no step under way), the live counts are the last step's.
      const idle = stepTimer === null;
      return {
        running: idle ? running.length : gauges.running,
        waiting: idle ? waiting.length : gauges.waiting,
        kvCacheUsage: kv.usage(),
        ...counters,
        runningLoras: distinctLoras(running),
        waitingLoras: distinctLoras(waiting),
        requestsByModel: { ...requestsByModel },
        requestsByFinishReason: { ...requestsByFinishReason },
      };
    },
    stop() {
      stopped = true;
      abortAll();
      if (stepTimer) stepTimer();
      stepTimer = null;
    },
  };
}
