import { createVirtualClock } from '../src/simulator/clock.js';
import { createEngine } from '../src/simulator/engine.js';
import { STAND_IN_ENCODER, type PromptEncoder } from '../src/simulator/prompt-encoder.js';
import { encode } from '../src/simulator/tokenizer.js';
import type { BenchRequest } from './workloads.js';

/**
 * The prefix-cache hit rate one server holding the whole fleet's KV capacity would reach on
 * the same requests in the same order: the same simulated engine, one request at a time, so
 * nothing is ever evicted for lack of room taken by concurrent work.
 */
export function upperBoundHits(
  sent: Array<{ request: BenchRequest; reply: string }>,
  numGpuBlocks: number,
  blockSize: number,
  encoder: PromptEncoder = STAND_IN_ENCODER,
): { hits: number; queries: number } {
  const clock = createVirtualClock();
  const engine = createEngine({ numGpuBlocks, blockSize, maxNumSeqs: 1, maxModelLen: Math.min(numGpuBlocks * blockSize, 131072) }, { clock });
  sent.forEach(({ request, reply }, i) => {
    const output = encode(reply).slice(0, request.maxTokens);
    while (output.length < request.maxTokens) output.push(100);
    engine.addRequest(
      { requestId: String(i), model: request.model, promptTokenIds: encoder.chat(request.messages, true), outputTokenIds: output, finishReason: 'length' },
      { onToken() {}, onFinish() {} },
    );
    clock.runUntilIdle(1_000_000);
  });
  const { prefixCacheHits, prefixCacheQueries } = engine.stats();
  engine.stop();
  return { hits: prefixCacheHits, queries: prefixCacheQueries };
}

/** Hits over queries, in prompt tokens, as the simulators count them. */
export function upperBoundHitRate(sent: Array<{ request: BenchRequest; reply: string }>, numGpuBlocks: number, blockSize: number): number {
  const { hits, queries } = upperBoundHits(sent, numGpuBlocks, blockSize);
  return queries > 0 ? hits / queries : 0;
}
