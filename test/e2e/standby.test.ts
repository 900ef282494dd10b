import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBenchStack, type RunningStack } from '../../bench/stack.js';
import { REPO } from '../../src/launcher/envoy.js';
import { stopChildren, waitForHttp } from '../../src/launcher/processes.js';
import { waitFor } from '../helpers/stack.js';

// Two router processes (dist/main.js, built by the test command) behind one real Envoy, as
// envoy/envoy.yaml runs replicas: the first active, the second a standby that hears what the
// first routes (peers). Envoy health-checks both over gRPC every second.
let stack: RunningStack;
const restarted: ChildProcess[] = [];

beforeAll(async () => {
  stack = await startBenchStack([{ model: 'llama-8b', servers: 2 }], { name: 'ours-peers', label: 'ours-peers', scheduler: {}, peers: true, replicas: 2 }, 0.05);
}, 60_000);

afterAll(async () => {
  await stopChildren(restarted);
  await stack?.stop();
});

const ask = async (i: number) => {
  const res = await fetch(`${stack.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'llama-8b', messages: [{ role: 'system', content: 'You answer briefly. '.repeat(20) }, { role: 'user', content: `Question ${i}` }], max_tokens: 3 }),
    signal: AbortSignal.timeout(10_000),
  });
  await res.arrayBuffer();
  return res.status;
};

/** Requests a replica decided (0 when it does not answer). */
const decided = async (admin: string) => {
  const text = await fetch(`${admin}/metrics`, { signal: AbortSignal.timeout(2_000) }).then((r) => r.text(), () => '');
  return [...text.matchAll(/^vllm_router_decisions_total\{[^}]*\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
};

const routed = async (admin: string) => {
  const stats = (await (await fetch(`${admin}/stats`)).json()) as { backends: Array<{ routedTotal: number }> };
  return stats.backends.reduce((sum, b) => sum + b.routedTotal, 0);
};

/** Prompt blocks a replica believes each backend holds. */
const guessed = async (admin: string) => {
  const stats = (await (await fetch(`${admin}/stats`)).json()) as { backends: Array<{ cache: { guessedBlocks: number } }> };
  return stats.backends.map((b) => b.cache.guessedBlocks).join();
};

describe('router replicas as one active and a standby', () => {
  it('the active replica decides every request; the standby counts them as it would have', async () => {
    const [active, standby] = stack.routerAdmins as [string, string];
    for (let i = 0; i < 10; i++) expect(await ask(i)).toBe(200);
    expect(await decided(active)).toBe(10);
    expect(await decided(standby)).toBe(0);
    await waitFor(async () => (await routed(standby)) === 10, 5_000, 'the standby to hear of all ten');
  });

  it('the standby takes over within 3 s of the active one dying, and no request fails meanwhile', async () => {
    const [, standby] = stack.routerAdmins as [string, string];
    process.kill(stack.routerPids[0]!, 'SIGKILL');
    const killed = Date.now();
    let takenOverAfterMs: number | undefined;
    for (let i = 0; Date.now() - killed < 5_000; i++) {
      // Until Envoy sees it gone, a request fails open: Envoy routes it by model itself.
      expect(await ask(100 + i)).toBe(200);
      if (takenOverAfterMs === undefined && (await decided(standby)) > 0) takenOverAfterMs = Date.now() - killed;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(takenOverAfterMs).toBeDefined();
    expect(takenOverAfterMs!).toBeLessThan(3_000);
  });

  it('the restarted replica takes the streams back, with the standby view of the fleet', async () => {
    const [active, standby] = stack.routerAdmins as [string, string];
    const child = spawn(process.execPath, [join(REPO, 'dist/main.js'), '--config', stack.configPath, '--log-level', 'warn'], { stdio: 'ignore' });
    restarted.push(child);
    await waitForHttp(`${active}/health`, 'restarted router');
    // It takes the standby's view of every backend's cache as it connects.
    const view = await guessed(standby);
    expect(view).not.toBe('0,0');
    await waitFor(async () => (await guessed(active)) === view, 2_000, 'the cache view taken over');
    // Healthy again after two passed checks, a second apart.
    await waitFor(async () => {
      await ask(1000);
      return (await decided(active)) > 0;
    }, 6_000, 'the restarted replica to decide again');
    // From then on it decides every request again.
    const standbyDecided = await decided(standby);
    for (let i = 0; i < 5; i++) expect(await ask(2000 + i)).toBe(200);
    expect(await decided(standby)).toBe(standbyDecided);
  });

  it('a replica shut down with SIGTERM hands over before it stops: no request fails open, and it exits without waiting out its grace', async () => {
    const [, standby] = stack.routerAdmins as [string, string];
    const pid = restarted[0]!.pid!;
    const failedOpen = await failOpenCount();
    const standbyBefore = await decided(standby);
    process.kill(pid, 'SIGTERM');
    const signalled = Date.now();
    let sent = 0;
    while (existsSync(`/proc/${pid}`) && sent < 300) {
      expect(await ask(3000 + sent)).toBe(200);
      sent++;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    // It ended Envoy's xDS stream once handed over, so it did not wait out its 5 s grace for it.
    expect(Date.now() - signalled).toBeLessThan(4_000);
    for (let i = 0; i < 10; i++) expect(await ask(4000 + i)).toBe(200);
    // Every request was decided by a router: by the closing one until Envoy moved to the standby.
    expect(await failOpenCount()).toBe(failedOpen);
    expect((await decided(standby)) - standbyBefore).toBeGreaterThanOrEqual(10);
  });
});

/** Requests Envoy let through without a routing answer (ext_proc's failure_mode_allow). */
async function failOpenCount(): Promise<number> {
  const text = await (await fetch(`${stack.envoyAdmin}/stats?filter=ext_proc`)).text();
  return [...text.matchAll(/ext_proc\.failure_mode_allowed: (\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
}
