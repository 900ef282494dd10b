/**
 * Records what a real vLLM server serves, for the simulator's calibration test
 * (test/unit/simulator-vs-vllm.test.ts): its /metrics after a few requests, and its /v1/models.
 * Run after a vLLM upgrade: `npm run vllm:record-sample` (needs scripts/setup-vllm.sh).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from '../../src/launcher/envoy.js';
import { startVllmServers } from '../helpers/vllm.js';

export const SAMPLE_DIR = join(REPO, 'test/fixtures/vllm-sample');

const [server] = await startVllmServers(1, { model: 'tiny' });
try {
  const post = (path: string, body: unknown) =>
    fetch(`${server!.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((r) => r.text());
  // Fill the histograms and the prefix cache counters: a repeated prompt, streamed and not.
  for (let i = 0; i < 3; i++) await post('/v1/completions', { model: 'tiny', prompt: 'alpha bravo charlie '.repeat(40), max_tokens: 4 });
  await post('/v1/chat/completions', { model: 'tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, stream: true });
  const version = (await (await fetch(`${server!.url}/version`)).json()) as { version: string };
  mkdirSync(SAMPLE_DIR, { recursive: true });
  writeFileSync(join(SAMPLE_DIR, 'metrics.txt'), await (await fetch(`${server!.url}/metrics`)).text());
  // The model's path on this machine becomes repository-relative.
  const models = (await (await fetch(`${server!.url}/v1/models`)).text()).replaceAll(REPO, '.');
  writeFileSync(join(SAMPLE_DIR, 'models.json'), `${JSON.stringify(JSON.parse(models), null, 2)}\n`);
  writeFileSync(join(SAMPLE_DIR, 'VERSION'), `${version.version}\n`);
  console.log(`recorded vLLM ${version.version} into ${SAMPLE_DIR}`);
} finally {
  await server!.stop();
}
