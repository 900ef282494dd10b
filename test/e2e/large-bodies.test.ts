import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { startStack, waitFor, type Stack } from '../helpers/stack.js';

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

interface Outcome {
  status: number;
  ms: number;
  /** The error body's code and message, or the transport failure. */
  code?: string;
  message?: string;
  retryAfter?: string;
}

/**
 * `count` chat requests of about `mib` MiB each (a base64 image, as multimodal clients send),
 * all at once, from a separate process so that the upload competes with the stack as a
 * client's would. The simulators serve a text-only model: the backend's 400 naming the image
 * part says the whole body reached it.
 */
function sendLargeBodies(url: string, count: number, mib: number, retries = 0): Promise<Outcome[][]> {
  const script = `
    const image = 'A'.repeat(${mib} * 1024 * 1024 - 400);
    const body = JSON.stringify({
      messages: [{ role: 'user', content: [{ type: 'text', text: 'What is in this image?' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,' + image } }] }],
      model: 'llama-8b',
      max_tokens: 4,
    });
    const one = async () => {
      const start = Date.now();
      try {
        const res = await fetch(${JSON.stringify(url)} + '/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(60000) });
        const text = await res.text();
        let error = {};
        try { error = JSON.parse(text).error ?? {}; } catch {}
        return { status: res.status, ms: Date.now() - start, code: error.code ?? undefined, message: error.message ?? text.slice(0, 200), retryAfter: res.headers.get('retry-after') ?? undefined };
      } catch (err) {
        return { status: 0, ms: Date.now() - start, code: String(err.cause?.code ?? err.name), message: String(err.message) };
      }
    };
    // Retried on 503 after retry-after, as the OpenAI SDKs do.
    const request = async () => {
      const attempts = [await one()];
      while (attempts.at(-1).status === 503 && attempts.length <= ${retries}) {
        await new Promise((r) => setTimeout(r, Number(attempts.at(-1).retryAfter ?? 1) * 1000 * (0.5 + Math.random())));
        attempts.push(await one());
      }
      return attempts;
    };
    Promise.all(Array.from({ length: ${count} }, request)).then((r) => process.stdout.write(JSON.stringify(r)));
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as Outcome[][]) : reject(new Error(`client exited ${code}`))));
  });
}

const reachedBackend = (o: Outcome) => o.status === 400 && /image_url/.test(o.message ?? '');

async function envoyStat(s: Stack, name: string): Promise<number> {
  const text = await (await fetch(`${s.envoy.adminUrl}/stats?filter=${encodeURIComponent(`^${name}$`)}`)).text();
  const match = /: (\d+)/.exec(text);
  return match ? Number(match[1]) : 0;
}

describe('large request bodies', () => {
  it('routes ten 31 MiB bodies sent at once: none waits on the 1 s message timeout', async () => {
    stack = await startStack({ backends: [{ models: ['llama-8b'] }, { models: ['llama-8b'] }] });
    const outcomes = (await sendLargeBodies(stack.envoy.url, 10, 31)).flat();
    expect(outcomes.filter((o) => !reachedBackend(o))).toEqual([]);
    // Every one was routed by the router, none by Envoy alone after a timeout.
    expect(await envoyStat(stack, 'http.vllm.ext_proc.message_timeouts')).toBe(0);
    expect(await envoyStat(stack, 'http.vllm.ext_proc.failure_mode_allowed')).toBe(0);
  }, 120_000);
});

describe('large bodies beyond what Envoy may hold', () => {
  it('refuses the bodies over the budget with 503 at their headers, and routes every one once retried', async () => {
    stack = await startStack({
      backends: [{ models: ['llama-8b'] }, { models: ['llama-8b'] }],
      // Four 31 MiB bodies at a time.
      config: { upstream: { healthCheckIntervalMs: 500, ejectionTimeMs: 2000, largeBodyBudgetBytes: 128 * 1024 * 1024 } },
    });
    const s = stack;
    let peak = 0;
    let polling = true;
    const poll = (async () => {
      while (polling) {
        const mem = (await (await fetch(`${s.envoy.adminUrl}/memory`)).json()) as { allocated: string };
        peak = Math.max(peak, Number(mem.allocated));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    // Twelve at once, each retried as SDKs do on 503.
    const requests = await sendLargeBodies(s.envoy.url, 12, 31, 30);
    polling = false;
    await poll;
    const attempts = requests.flat();
    const refused = attempts.filter((o) => o.status === 503);
    expect(refused.length).toBeGreaterThan(0);
    for (const o of refused) {
      expect(o.code).toBe('large_bodies_busy');
      expect(o.retryAfter).toBe('1');
    }
    expect(attempts.filter((o) => o.status !== 503 && !reachedBackend(o))).toEqual([]);
    expect(requests.map((r) => reachedBackend(r.at(-1)!))).toEqual(requests.map(() => true));
    // Twelve 31 MiB bodies held at once cost Envoy about 800 MiB; four, and the read-ahead
    // of those refused, well under that.
    expect(peak).toBeLessThan(600 * 1024 * 1024);
    // The budget is whole again: as many as it holds are all taken at once.
    const after = (await sendLargeBodies(s.envoy.url, 4, 31)).flat();
    expect(after.filter((o) => !reachedBackend(o))).toEqual([]);
  }, 180_000);

  it("answers 503 in OpenAI's shape when Envoy's heap is nearly full", async () => {
    stack = await startStack({
      backends: [{ models: ['llama-8b'] }],
      envoy: {
        edit: (b) => {
          // A ceiling below what Envoy already uses: every new request meets the overload manager.
          b.overload_manager.resource_monitors.find((m: { name: string }) => m.name === 'envoy.resource_monitors.fixed_heap').typed_config.max_heap_size_bytes = 1024 * 1024;
          delete b.overload_manager.loadshed_points;
        },
      },
    });
    const s = stack;
    let res: Response | undefined;
    await waitFor(async () => {
      res = await fetch(`${s.envoy.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'llama-8b', prompt: 'hi', max_tokens: 2 }) });
      return res.status === 503;
    }, 5000, 'the overload manager to refuse requests');
    expect(res!.headers.get('content-type')).toBe('application/json');
    expect(res!.headers.get('retry-after')).toBe('1');
    expect(((await res!.json()) as { error: { code: string; type: string } }).error).toMatchObject({ code: 'proxy_overloaded', type: 'server_error' });
  }, 60_000);
});
