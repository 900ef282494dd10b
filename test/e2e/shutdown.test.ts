import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { startBenchStack } from '../../bench/stack.js';
import { openStream } from '../helpers/sse.js';
import { waitFor } from '../helpers/stack.js';

describe('graceful shutdown of the router process', () => {
  it('on SIGTERM, lets a stream in flight finish, then exits', async () => {
    // The router as a real process (dist/main.js, built by the test command), as deployed.
    const stack = await startBenchStack([{ model: 'llama-8b', servers: 1 }], { name: 'ours', label: 'ours', scheduler: {} }, 0.05);
    try {
      const res = await fetch(`${stack.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'llama-8b', prompt: 'a long story', max_tokens: 3000, ignore_eos: true, stream: true }),
      });
      expect(res.status).toBe(200);
      const stream = await openStream(res);
      process.kill(stack.routerPid, 'SIGTERM');
      const { completed, events } = await stream.rest();
      expect(completed).toBe(true);
      expect(events).toBe(3000);
      await waitFor(() => !existsSync(`/proc/${stack.routerPid}`), 10_000, 'the router to exit');
    } finally {
      await stack.stop();
    }
  });
});
