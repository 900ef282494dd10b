/** POST /v1/chat/completions and /v1/completions, streaming and not. */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FinishedRequest } from './engine.js';
import { CHAT_EOS_TOKEN, COMPLETION_EOS_TOKEN } from './filler.js';
import { prepareJob, resolveModel, runJobs, type Job, type ServingContext } from './generation.js';
import { sendJson, startSse } from './http-io.js';
import { parseChatRequest, parseCompletionRequest, type GenerationSettings } from './openai-requests.js';
import {
  chatChunk,
  chatCompletion,
  chatUsageChunk,
  completionChunk,
  completionUsageChunk,
  textCompletion,
  usage,
  type ResponseHead,
} from './openai-responses.js';

/** vLLM takes the request id from X-Request-Id, then the request_id field, else a fresh uuid. */
function baseRequestId(req: IncomingMessage, settings: GenerationSettings): string {
  const header = req.headers['x-request-id'];
  const fromHeader = Array.isArray(header) ? header[0] : header;
  return fromHeader || settings.requestId || randomUUID().replace(/-/g, '');
}

function createdNow(): number {
  return Math.floor(Date.now() / 1000);
}

function sum(results: readonly FinishedRequest[], key: 'promptTokens' | 'outputTokens' | 'cachedTokens'): number {
  return results.reduce((total, r) => total + r[key], 0);
}

/** Ends a response whose engine work was aborted (server shutting down, or client gone). */
function dropAborted(res: ServerResponse, results: readonly FinishedRequest[]): boolean {
  if (results.some((r) => r.finishReason === 'abort')) {
    res.destroy();
    return true;
  }
  return false;
}

export async function handleChatCompletion(
  ctx: ServingContext,
  req: IncomingMessage,
  res: ServerResponse,
  body: unknown,
): Promise<void> {
  const request = parseChatRequest(body);
  const model = resolveModel(ctx, request.model);
  const head: ResponseHead = { id: `chatcmpl-${baseRequestId(req, request)}`, created: createdNow(), model };
  const job = prepareJob(ctx, head.id, model, ctx.encoder.chat(request.turns, true), request, CHAT_EOS_TOKEN);
  const promptTokens = job.promptTokenIds.length;
  const outputLength = job.plan.tokenIds.length;

  if (!request.stream) {
    const [result] = await runJobs(ctx, res, [job], { onToken() {}, onFinish() {} });
    if (!result || dropAborted(res, [result])) return;
    const text = job.plan.texts.slice(0, result.outputTokens).join('');
    sendJson(res, 200, chatCompletion(head, text, result.finishReason, usage(promptTokens, result.outputTokens, result.cachedTokens)));
    return;
  }

  const sse = startSse(res);
  const continuous = (completed: number) => (request.continuousUsage ? usage(promptTokens, completed) : undefined);
  await runJobs(ctx, res, [job], {
    onToken(_job, i) {
      if (i === 0) sse.send(chatChunk(head, { role: 'assistant', content: '' }, undefined, continuous(0)));
      const finishReason = i === outputLength - 1 ? job.plan.finishReason : null;
      sse.send(chatChunk(head, { content: job.plan.texts[i] ?? '' }, finishReason, continuous(i + 1)));
    },
    onFinish(_job, result) {
      if (dropAborted(res, [result])) return;
      if (request.includeUsage) {
        const cached = result.cachedTokens > 0 ? result.cachedTokens : undefined;
        sse.send(chatUsageChunk(head, usage(promptTokens, result.outputTokens, cached)));
      }
      sse.done();
    },
  });
}

export async function handleCompletion(
  ctx: ServingContext,
  req: IncomingMessage,
  res: ServerResponse,
  body: unknown,
): Promise<void> {
  const request = parseCompletionRequest(body, ctx.encoder);
  const model = resolveModel(ctx, request.model);
  const head: ResponseHead = { id: `cmpl-${baseRequestId(req, request)}`, created: createdNow(), model };
  const single = request.prompts.length === 1;
  const jobs: Job[] = request.prompts.map((prompt, i) =>
    prepareJob(ctx, single ? head.id : `${head.id}-${i}`, model, prompt, request, COMPLETION_EOS_TOKEN),
  );

  if (!request.stream) {
    const results = await runJobs(ctx, res, jobs, { onToken() {}, onFinish() {} });
    if (dropAborted(res, results)) return;
    const choices = results.map((r, i) => ({
      text: (jobs[i] as Job).plan.texts.slice(0, r.outputTokens).join(''),
      finishReason: r.finishReason,
    }));
    const u = usage(sum(results, 'promptTokens'), sum(results, 'outputTokens'), sum(results, 'cachedTokens'));
    sendJson(res, 200, textCompletion(head, choices, u));
    return;
  }

  const sse = startSse(res);
  let aborted = false;
  const results = await runJobs(ctx, res, jobs, {
    onToken(j, i) {
      const job = jobs[j] as Job;
      const last = i === job.plan.tokenIds.length - 1;
      const u = request.continuousUsage ? usage(job.promptTokenIds.length, i + 1, 0) : undefined;
      sse.send(completionChunk(head, j, job.plan.texts[i] ?? '', last ? job.plan.finishReason : null, u));
    },
    onFinish(_job, result) {
      if (result.finishReason === 'abort' && !aborted) {
        aborted = true;
        res.destroy();
      }
    },
  });
  if (aborted) return;
  if (request.includeUsage) {
    const cached = sum(results, 'cachedTokens');
    sse.send(completionUsageChunk(head, usage(sum(results, 'promptTokens'), sum(results, 'outputTokens'), cached > 0 ? cached : undefined)));
  }
  sse.done();
}
