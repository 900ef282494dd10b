/**
 * What one scrape costs a real vLLM server: the CPU its API server process spends answering
 * the whole /metrics page, the series the router reads asked for by name (the router's own
 * probe), and /health, over the same number of reads, in one run. One real vLLM server.
 *
 *   npx tsx bench/vllm-scrape-cost.ts [--reads 300] [--rounds 2]
 */
import { parseArgs } from 'node:util';
import { httpGet } from '../src/fleet/http-get.js';
import { createHttpProbe } from '../src/fleet/probe.js';
import { startVllmServers, type VllmServer } from '../test/helpers/vllm.js';
import { cpuSecondsOf } from './proc-cpu.js';

const { values } = parseArgs({ options: { reads: { type: 'string', default: '300' }, rounds: { type: 'string', default: '2' } } });
const READS = Number(values.reads);
async function measure(apiServer: number, read: () => Promise<unknown>) {
  const cpu = cpuSecondsOf(apiServer);
  const started = performance.now();
  for (let i = 0; i < READS; i++) await read();
  return { cpuMs: ((cpuSecondsOf(apiServer) - cpu) * 1000) / READS, wallMs: (performance.now() - started) / READS };
}

let servers: VllmServer[] = [];
try {
  servers = await startVllmServers(1, { model: 'tiny' });
  const { url } = servers[0]!;
  const apiServer = servers[0]!.pid;
  const probe = createHttpProbe();
  const full = async () => {
    const res = await httpGet(`${url}/metrics`, 5_000);
    if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
    return res.body.length;
  };
  const page = await full();
  await probe.metrics(url, 5_000);
  console.log(`vLLM at ${url}, API server pid ${apiServer}; whole page ${page} bytes; ${READS} reads each, sequential`);
  const reads: Array<[string, () => Promise<unknown>]> = [
    ['/metrics, whole page', full],
    ['series by name (the router)', () => probe.metrics(url, 5_000)],
    ['/health', () => probe.health(url, 5_000)],
  ];
  for (let round = 1; round <= Number(values.rounds); round++) {
    for (const [name, read] of reads) {
      const r = await measure(apiServer, read);
      console.log(`round ${round}  ${name.padEnd(28)} API server CPU ${r.cpuMs.toFixed(2)} ms per read, ${r.wallMs.toFixed(2)} ms wall`);
    }
  }
} finally {
  await Promise.all(servers.map((s) => s.stop()));
}
