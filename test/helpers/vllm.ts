import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../../bench/stack.js';
import { REPO } from '../../src/launcher/envoy.js';

/**
 * Real vLLM servers (the CPU build installed by scripts/setup-vllm.sh) serving the tiny model,
 * on loopback, each pinned to one core. Start-up takes 65-100 s here; every wait is bounded.
 */
export const VLLM_HOME = process.env.VLLM_HOME ?? join(REPO, '.vllm');
const PYTHON = join(VLLM_HOME, 'venv/bin/python');
export const TINY_MODEL = join(VLLM_HOME, 'model');
/** A LoRA adapter of the tiny model (rank 8), built beside it. */
export const TINY_LORA = join(VLLM_HOME, 'model-lora');

export function vllmInstalled(): boolean {
  return existsSync(PYTHON) && existsSync(join(TINY_MODEL, 'tokenizer.json')) && existsSync(join(TINY_LORA, 'adapter_config.json'));
}

export interface VllmOptions {
  /** Name the server answers to (--served-model-name). */
  model?: string;
  /** KV cache size in blocks of 32 tokens (--num-gpu-blocks-override). */
  kvBlocks?: number;
  maxModelLen?: number;
  /** Publish KV events on an ipc:// socket in the log folder, with a replay socket on loopback. */
  kvEvents?: boolean;
  extraArgs?: string[];
  /** More environment for the server (e.g. VLLM_SERVER_DEV_MODE=1 for /reset_prefix_cache). */
  env?: Record<string, string>;
}

export interface VllmServer {
  url: string;
  port: number;
  /** Where the server publishes KV events (when asked to), and its replay endpoint. */
  kvEndpoint?: string;
  replayEndpoint?: string;
  logPath: string;
  /** The API server's process (its engine core and worker are its children). */
  pid: number;
  /** The end of its log, for failure messages. */
  logTail(lines?: number): string;
  stop(): Promise<void>;
}

function spawnServer(index: number, options: VllmOptions, port: number, logDir: string): { child: ChildProcess; server: Omit<VllmServer, 'stop'> } {
  const logPath = join(logDir, `vllm-${index}-${port}.log`);
  const kvEndpoint = options.kvEvents ? `ipc://${join(logDir, `kv-${port}.sock`)}` : undefined;
  // Both sockets on ipc: a TCP port picked free here is bound only when the engine starts, some
  // 20 s later, and another process (the other server's engine) once took it first.
  const replayEndpoint = options.kvEvents ? `ipc://${join(logDir, `kv-replay-${port}.sock`)}` : undefined;
  const args = [
    '-m', 'vllm.entrypoints.openai.api_server',
    '--model', TINY_MODEL,
    '--served-model-name', options.model ?? 'tiny',
    '--load-format', 'dummy',
    '--host', '127.0.0.1',
    '--port', String(port),
    '--block-size', '32',
    '--num-gpu-blocks-override', String(options.kvBlocks ?? 256),
    '--max-model-len', String(options.maxModelLen ?? 4096),
    '--enable-prefix-caching',
    ...(kvEndpoint ? ['--kv-events-config', JSON.stringify({ enable_kv_cache_events: true, publisher: 'zmq', endpoint: kvEndpoint, replay_endpoint: replayEndpoint })] : []),
    ...(options.extraArgs ?? []),
  ];
  const out = openSync(logPath, 'w');
  const child = spawn(PYTHON, args, {
    cwd: REPO,
    detached: true, // its own process group: the API server, engine core and worker stop together
    stdio: ['ignore', out, out],
    env: {
      ...process.env,
      HF_HUB_OFFLINE: '1',
      VLLM_TARGET_DEVICE: 'cpu',
      VLLM_CPU_KVCACHE_SPACE: '1',
      VLLM_CPU_OMP_THREADS_BIND: String(index % 2),
      VLLM_NO_USAGE_STATS: '1',
      DO_NOT_TRACK: '1',
      ...options.env,
    },
  });
  const logTail = (lines = 30) => {
    try {
      return readFileSync(logPath, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  };
  return { child, server: { url: `http://127.0.0.1:${port}`, port, pid: child.pid!, kvEndpoint, replayEndpoint, logPath, logTail } };
}

async function healthy(url: string): Promise<boolean> {
  try {
    return (await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) })).status === 200;
  } catch {
    return false;
  }
}

function stopGroup(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = (signal: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, signal);
      } catch {
        /* already gone */
      }
    };
    const hard = setTimeout(() => kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(hard);
      kill('SIGKILL'); // any engine process left behind in the group
      resolve();
    });
    kill('SIGTERM');
  });
}

/** Starts `count` servers in parallel and waits (at most `timeoutMs`) until all answer /health. */
export async function startVllmServers(count: number, options: VllmOptions = {}, timeoutMs = 300_000): Promise<VllmServer[]> {
  const logDir = join(REPO, '.tmp/vllm');
  mkdirSync(logDir, { recursive: true });
  const started: Array<{ child: ChildProcess; server: Omit<VllmServer, 'stop'> }> = [];
  const stopAll = () => Promise.all(started.map((s) => stopGroup(s.child)));
  try {
    for (let i = 0; i < count; i++) started.push(spawnServer(i, options, await freePort(), logDir));
    const deadline = Date.now() + timeoutMs;
    for (const { child, server } of started) {
      while (!(await healthy(server.url))) {
        if (child.exitCode !== null) throw new Error(`vLLM on port ${server.port} exited with ${child.exitCode}:\n${server.logTail()}`);
        if (Date.now() > deadline) throw new Error(`vLLM on port ${server.port} not healthy after ${timeoutMs} ms:\n${server.logTail()}`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    return started.map(({ child, server }) => ({ ...server, stop: () => stopGroup(child) }));
  } catch (err) {
    await stopAll();
    throw err;
  }
}
