#!/usr/bin/env node
/**
 * Runs the whole product on this machine: simulated vLLM servers (unless --config names a
 * fleet of real ones), the router, and Envoy in front, then prints the URL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfigFile } from './config/load.js';
import { REPO, startEnvoy, type EnvoyHandle } from './launcher/envoy.js';
import { stopChildren, waitForHttp } from './launcher/processes.js';

const DEMO_CONFIG = join(REPO, 'examples/router.demo.yaml');
const DEMO_SIMULATORS = [
  { port: 8001, model: 'llama-8b' },
  { port: 8002, model: 'llama-8b' },
  { port: 8003, model: 'qwen-7b' },
];

const children: ChildProcess[] = [];
let envoy: EnvoyHandle | undefined;

function run(script: string, args: string[], name: string): ChildProcess {
  const child = spawn(process.execPath, [join(REPO, 'dist', script), ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
  child.on('exit', (code, signal) => {
    if (!stopping) {
      console.error(`${name} exited (${signal ?? code}); stopping the demo`);
      void stop(1);
    }
  });
  children.push(child);
  return child;
}

let stopping = false;
async function stop(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  await envoy?.stop();
  await stopChildren(children);
  process.exit(code);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      config: { type: 'string', short: 'c' },
      port: { type: 'string', default: '8080' },
      host: { type: 'string', default: '127.0.0.1' },
      'time-scale': { type: 'string', default: '1' },
    },
  });
  const configPath = values.config ?? DEMO_CONFIG;
  const config = await loadConfigFile(configPath);
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be a TCP port, got '${values.port}'`);

  if (!values.config) {
    for (const sim of DEMO_SIMULATORS) {
      run('simulator/main.js', ['--port', String(sim.port), '--model', sim.model, '--time-scale', values['time-scale']!], `simulator ${sim.port}`);
    }
    await Promise.all(DEMO_SIMULATORS.map((s) => waitForHttp(`http://127.0.0.1:${s.port}/health`, `simulator on port ${s.port}`)));
  }
  run('main.js', ['--config', configPath], 'router');
  await waitForHttp(`http://${config.admin.host}:${config.admin.port}/metrics`, 'router admin');
  envoy = await startEnvoy({
    controlPlane: { host: config.grpc.host === '0.0.0.0' ? '127.0.0.1' : config.grpc.host, port: config.grpc.port },
    listen: { host: values.host!, port },
    inheritOutput: true,
  });
  envoy.process.on('exit', () => void stop(1));
  console.log(`
vLLM fleet ready at ${envoy.url}   (config: ${configPath}, watched for changes)
  curl ${envoy.url}/v1/models
  curl ${envoy.url}/v1/chat/completions -H 'content-type: application/json' \\
       -d '{"model":"${config.backends[0]?.models?.[0] ?? 'MODEL'}","messages":[{"role":"user","content":"Hello!"}]}'
router admin: http://${config.admin.host}:${config.admin.port}/stats  /metrics     Envoy admin: ${envoy.adminUrl}
Ctrl-C stops everything.`);
}

process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));
main().catch((err) => {
  console.error(err instanceof ConfigError ? err.message : `demo failed: ${(err as Error).message}`);
  void stop(1);
});
