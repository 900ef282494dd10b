/**
 * Turns validated requests into engine work: output length and text plan, length checks
 * with vLLM's messages, and the link between an HTTP exchange and its engine requests
 * (a client that goes away aborts them, as vLLM does on disconnect).
 */
import type { ServerResponse } from 'node:http';
import type { Engine, FinishedRequest } from './engine.js';
import { maxTokensTooLarge, modelNotFound, promptTooLong } from './errors.js';
import { naturalOutputLength, planOutput, type OutputPlan } from './filler.js';
import type { GenerationSettings } from './openai-requests.js';
import type { PromptEncoder } from './prompt-encoder.js';

export interface ServingContext {
  engine: Engine;
  /** Served model names; the first is the default. */
  models: readonly string[];
  maxModelLen: number;
  seed: number;
  encoder: PromptEncoder;
  /** LoRA adapters served beside the base model (--lora-modules): name -> path. */
  adapters: ReadonlyMap<string, string>;
}

export interface Job {
  requestId: string;
  model: string;
  promptTokenIds: number[];
  plan: OutputPlan;
}

export function resolveModel(ctx: ServingContext, requested: string | undefined): string {
  if (requested === undefined || requested === '') return ctx.models[0] as string;
  if (!ctx.models.includes(requested) && !ctx.adapters.has(requested)) throw modelNotFound(requested);
  return requested;
}

/**
 * Plans one completion. With max_tokens the output is exactly that long ("length"); without
 * it the request stops at a prompt-derived natural length with a stop token ("stop"), or with
 * ignore_eos runs to max_model_len, as vLLM's default max_tokens would.
 */
export function prepareJob(
  ctx: ServingContext,
  requestId: string,
  model: string,
  promptTokenIds: number[],
  settings: GenerationSettings,
  stopTokenId: number,
): Job {
  const promptLen = promptTokenIds.length;
  const limit = ctx.maxModelLen;
  let plan: OutputPlan;
  if (settings.maxTokens !== null) {
    if (promptLen > limit) throw promptTooLong(limit, promptLen);
    if (promptLen + settings.maxTokens > limit) throw maxTokensTooLarge(settings.maxTokens, limit, promptLen);
    plan = planOutput(promptTokenIds, settings.maxTokens, null, ctx.seed);
  } else {
    if (promptLen >= limit) throw promptTooLong(limit, promptLen);
    const room = limit - promptLen;
    const natural = naturalOutputLength(promptTokenIds, ctx.seed);
    if (settings.ignoreEos || natural > room) plan = planOutput(promptTokenIds, room, null, ctx.seed);
    else plan = planOutput(promptTokenIds, natural, stopTokenId, ctx.seed);
  }
  return { requestId, model, promptTokenIds, plan };
}

export interface JobCallbacks {
  onToken(job: number, tokenIndex: number): void;
  onFinish(job: number, result: FinishedRequest): void;
}

/**
 * Submits jobs to the engine and resolves with their results once all finished or aborted.
 * Closing `res` early aborts whatever is still queued or running.
 */
export function runJobs(ctx: ServingContext, res: ServerResponse, jobs: readonly Job[], callbacks: JobCallbacks): Promise<FinishedRequest[]> {
  return new Promise((resolve, reject) => {
    if (res.destroyed) {
      reject(new Error('client disconnected before the request was queued'));
      return;
    }
    const results: (FinishedRequest | undefined)[] = new Array(jobs.length);
    const submitted: string[] = [];
    let remaining = jobs.length;
    const abortUnfinished = () => {
      jobs.forEach((job, i) => {
        if (!results[i]) ctx.engine.abort(job.requestId);
      });
    };
    res.on('close', abortUnfinished);
    try {
      jobs.forEach((job, i) => {
        ctx.engine.addRequest(
          {
            requestId: job.requestId,
            model: job.model,
            promptTokenIds: job.promptTokenIds,
            outputTokenIds: job.plan.tokenIds,
            finishReason: job.plan.finishReason,
            ...(ctx.adapters.has(job.model) ? { lora: job.model } : {}),
          },
          {
            onToken: (index) => callbacks.onToken(i, index),
            onFinish: (result) => {
              results[i] = result;
              callbacks.onFinish(i, result);
              if (--remaining === 0) {
                res.off('close', abortUnfinished);
                resolve(results as FinishedRequest[]);
              }
            },
          },
        );
        submitted.push(job.requestId);
      });
    } catch (err) {
      res.off('close', abortUnfinished);
      for (const id of submitted) ctx.engine.abort(id);
      reject(err instanceof Error ? err : new Error(String(err)));
    }
  });
}
