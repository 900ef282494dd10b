import { Agent, request } from 'node:http';
import { sseFrames } from '../test/helpers/sse.js';
import type { BenchRequest, Workload } from './workloads.js';

export interface RequestResult {
  ok: boolean;
  status: number;
  /** The retry-after header of a refused request, if it had one. */
  retryAfter?: string;
  /** ms from sending to the first generated text. */
  ttftMs: number;
  /** ms from sending to the end of the stream. */
  e2eMs: number;
  completionTokens: number;
  text: string;
  error?: string;
}

const agent = new Agent({ keepAlive: true, maxSockets: 1024 });

/** Sends one streaming chat completion and times it from the client's side. */
export function streamChat(baseUrl: string, req: BenchRequest, timeoutMs = 60_000, headers: Record<string, string> = {}): Promise<RequestResult> {
  const body = JSON.stringify({
    model: req.model,
    messages: req.messages,
    max_tokens: req.maxTokens,
    ignore_eos: true,
    stream: true,
    stream_options: { include_usage: true },
  });
  const start = performance.now();
  return new Promise((resolve) => {
    let ttft = -1;
    let text = '';
    let tokens = 0;
    let status = 0;
    const finish = (ok: boolean, error?: string) =>
      resolve({ ok, status, ttftMs: ttft, e2eMs: performance.now() - start, completionTokens: tokens, text, ...(error ? { error } : {}) });
    const r = request(
      `${baseUrl}/v1/chat/completions`,
      { method: 'POST', agent, headers: { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, timeout: timeoutMs },
      (res) => {
        status = res.statusCode ?? 0;
        res.setEncoding('utf8');
        if (status !== 200) {
          let err = '';
          const retryAfter = res.headers['retry-after'];
          res.on('data', (c: string) => (err += c));
          res.on('end', () => {
            if (typeof retryAfter === 'string') resolve({ ok: false, status, retryAfter, ttftMs: -1, e2eMs: performance.now() - start, completionTokens: 0, text: '', error: `${status}: ${err.slice(0, 200)}` });
            else finish(false, `${status}: ${err.slice(0, 200)}`);
          });
          return;
        }
        res.on(
          'data',
          sseFrames((frame) => {
            if (!frame.startsWith('data: ') || frame === 'data: [DONE]') return;
            const event = JSON.parse(frame.slice(6)) as {
              choices: Array<{ delta?: { content?: string } }>;
              usage?: { completion_tokens: number } | null;
            };
            const delta = event.choices[0]?.delta?.content;
            if (delta) {
              if (ttft < 0) ttft = performance.now() - start;
              text += delta;
            }
            if (event.usage) tokens = event.usage.completion_tokens;
          }),
        );
        res.on('end', () => finish(ttft >= 0));
        res.on('error', (e) => finish(false, e.message));
      },
    );
    r.on('timeout', () => r.destroy(new Error('timeout')));
    r.on('error', (e) => finish(false, e.message));
    r.end(body);
  });
}

export function closeClient(): void {
  agent.destroy();
}

/**
 * Closed loop: `concurrency` workers take sessions in order and play their turns. A session
 * marked `direct` goes straight to one of `servers` and is not counted.
 */
export async function drive(url: string, workload: Workload, deadlineMs: number, servers: readonly string[] = []) {
  const results: RequestResult[] = [];
  const sent: Array<{ request: BenchRequest; reply: string }> = [];
  let next = 0;
  const worker = async () => {
    while (next < workload.sessions.length && Date.now() < deadlineMs) {
      const session = workload.sessions[next++]!;
      if (session.direct !== undefined) {
        if (servers.length === 0) throw new Error(`${workload.name} sends traffic straight to the servers: drive() needs their URLs`);
        await streamChat(servers[session.direct % servers.length]!, session.turn(0, []));
        continue;
      }
      const replies: string[] = [];
      for (let t = 0; t < session.turns && Date.now() < deadlineMs; t++) {
        const request = session.turn(t, replies);
        const result = await streamChat(url, request);
        results.push(result);
        sent.push({ request, reply: result.text });
        replies.push(result.text);
      }
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: workload.concurrency }, worker));
  return { results, sent, durationS: (performance.now() - started) / 1000 };
}
