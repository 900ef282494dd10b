import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseCliArgs, UsageError } from './cli-args.js';

describe('parseCliArgs', () => {
  it('maps vLLM-style flags onto simulator options', () => {
    expect(
      parseCliArgs([
        '--port', '8001', '--model', 'llama-8b', '--model', 'alias', '--time-scale', '0.1', '--max-num-seqs', '8',
        '--num-gpu-blocks', '512', '--block-size', '32', '--max-num-batched-tokens', '1024', '--max-model-len', '4096',
        '--host', '0.0.0.0', '--seed', '7',
      ]),
    ).toEqual({
      models: ['llama-8b', 'alias'],
      port: 8001,
      host: '0.0.0.0',
      engine: { maxNumSeqs: 8, numGpuBlocks: 512, blockSize: 32, maxNumBatchedTokens: 1024, maxModelLen: 4096, timeScale: 0.1, seed: 7 },
    });
    expect(parseCliArgs(['--model=m'])).toEqual({ models: ['m'], engine: {} });
    expect(parseCliArgs(['--help'])).toBe('help');
  });

  it("takes vLLM's --kv-events-config and the simulator's --kv-events-encoding", () => {
    const config = {
      enable_kv_cache_events: true,
      publisher: 'zmq',
      endpoint: 'ipc:///tmp/sim-kv.sock',
      replay_endpoint: 'tcp://127.0.0.1:5558',
      topic: 'kv',
      buffer_steps: 50,
      hwm: 1000,
      max_queue_size: 10,
    };
    expect(parseCliArgs(['--model', 'm', '--kv-events-config', JSON.stringify(config), '--kv-events-encoding', 'arrays'])).toEqual({
      models: ['m'],
      engine: {},
      kvEvents: { endpoint: 'ipc:///tmp/sim-kv.sock', replayEndpoint: 'tcp://127.0.0.1:5558', topic: 'kv', bufferSteps: 50, hwm: 1000, encoding: 'arrays' },
    });
    expect(parseCliArgs(['--model', 'm', '--kv-events-config', '{"enable_kv_cache_events":true,"endpoint":"tcp://127.0.0.1:5557"}'])).toMatchObject({
      kvEvents: { endpoint: 'tcp://127.0.0.1:5557', replayEndpoint: null, topic: '', bufferSteps: 10_000, hwm: 100_000, encoding: 'maps' },
    });
    // Off, as in vLLM, unless enabled and published with zmq.
    expect(parseCliArgs(['--model', 'm', '--kv-events-config', '{"enable_kv_cache_events":false,"endpoint":"ipc:///tmp/k"}'])).toEqual({ models: ['m'], engine: {} });
    expect(parseCliArgs(['--model', 'm', '--kv-events-config', '{"enable_kv_cache_events":true,"publisher":"null"}'])).toEqual({ models: ['m'], engine: {} });
  });

  it.each([
    [['--port', '80'], 'at least one --model NAME is required'],
    [['--model', 'm', '--port', 'abc'], "--port must be an integer in [0, 65535], got 'abc'"],
    [['--model', 'm', '--port', '70000'], "--port must be an integer in [0, 65535], got '70000'"],
    [['--model', 'm', '--max-num-seqs', '0'], "--max-num-seqs must be an integer >= 1, got '0'"],
    [['--model', 'm', '--block-size', '1.5'], "--block-size must be an integer >= 1, got '1.5'"],
    [['--model', 'm', '--time-scale=-1'], "--time-scale must be a number >= 0, got '-1'"],
    [['--model', 'm', '--model', 'm'], "--model 'm' given more than once"],
    [['--model', 'm', '--time-scale', 'fast'], "--time-scale must be a number >= 0, got 'fast'"],
    [['--model', 'm', '--bogus'], "Unknown option '--bogus'"],
    [['--model', 'm', 'extra'], "Unexpected argument 'extra'"],
    [['--model', 'm', '--kv-events-config', '{"enable_kv_cache_events":'], '--kv-events-config: must be valid JSON: '],
    [['--model', 'm', '--kv-events-config', '[1]'], '--kv-events-config: must be a JSON object, got [1]'],
    [['--model', 'm', '--kv-events-config', '{"enable":true}'], "--kv-events-config: unknown key 'enable' (known: enable_kv_cache_events, publisher,"],
    [['--model', 'm', '--kv-events-config', '{"enable_kv_cache_events":"yes"}'], '--kv-events-config: enable_kv_cache_events must be true or false, got "yes"'],
    [['--model', 'm', '--kv-events-config', '{"enable_kv_cache_events":true,"publisher":"nats"}'], '--kv-events-config: publisher must be "zmq" or "null", got "nats"'],
    [['--model', 'm', '--kv-events-config', '{"enable_kv_cache_events":true}'], '--kv-events-config: endpoint is required (e.g. ipc:///tmp/kv-events.sock or tcp://127.0.0.1:5557)'],
    [['--model', 'm', '--kv-events-config', '{"enable_kv_cache_events":true,"endpoint":"http://x:1"}'], '--kv-events-config: endpoint must be a ZMQ endpoint (tcp://HOST:PORT, ipc://PATH or inproc://NAME), got "http://x:1"'],
    [['--model', 'm', '--kv-events-config', '{"enable_kv_cache_events":true,"endpoint":"tcp://127.0.0.1"}'], '--kv-events-config: endpoint must name a port (tcp://HOST:PORT), got "tcp://127.0.0.1"'],
    [['--model', 'm', '--kv-events-config', '{"enable_kv_cache_events":true,"endpoint":"ipc:///tmp/k","replay_endpoint":"ipc://"}'], '--kv-events-config: replay_endpoint must be a ZMQ endpoint'],
    [['--model', 'm', '--kv-events-config', '{"enable_kv_cache_events":true,"endpoint":"ipc:///tmp/k","buffer_steps":0}'], '--kv-events-config: buffer_steps must be an integer >= 1, got 0'],
    [['--model', 'm', '--kv-events-config', '{"enable_kv_cache_events":true,"endpoint":"ipc:///tmp/k","topic":5}'], '--kv-events-config: topic must be a string, got 5'],
    [['--model', 'm', '--kv-events-config', '{"enable_kv_cache_events":true,"endpoint":"ipc:///tmp/k"}', '--kv-events-encoding', 'json'], "--kv-events-encoding must be one of maps, arrays, got 'json'"],
    [['--model', 'm', '--kv-events-encoding', 'arrays'], '--kv-events-encoding needs --kv-events-config'],
  ])('rejects %j', (argv, message) => {
    expect(() => parseCliArgs(argv)).toThrow(UsageError);
    expect(() => parseCliArgs(argv)).toThrow(message);
  });
});

const mainPath = fileURLToPath(new URL('./main.ts', import.meta.url));

function runMain(args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', mainPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  return { child, exited, out: () => stdout, err: () => stderr };
}

describe('vllm-sim command', () => {
  it('prints its URL when ready, serves, and exits 0 on SIGTERM', async () => {
    const run = runMain(['--port', '0', '--model', 'cli-model', '--time-scale', '0.05']);
    try {
      for (let i = 0; i < 300 && !run.out().includes('\n'); i++) await new Promise((r) => setTimeout(r, 20));
      const match = /^vllm-sim listening on (http:\/\/127\.0\.0\.1:\d+)\n$/.exec(run.out());
      expect(match, run.err()).not.toBeNull();
      const models = (await (await fetch(`${match?.[1]}/v1/models`)).json()) as { data: { id: string }[] };
      expect(models.data.map((m) => m.id)).toEqual(['cli-model']);
      run.child.kill('SIGTERM');
      expect(await run.exited).toEqual([0, null]);
    } finally {
      run.child.kill('SIGKILL');
    }
  });

  it('publishes KV events on the configured ipc socket and still exits 0 on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvcli-'));
    const config = { enable_kv_cache_events: true, endpoint: `ipc://${dir}/pub.sock`, replay_endpoint: `ipc://${dir}/replay.sock` };
    const run = runMain(['--port', '0', '--model', 'm', '--kv-events-config', JSON.stringify(config)]);
    try {
      for (let i = 0; i < 750 && run.out().split('\n').length < 3; i++) await new Promise((r) => setTimeout(r, 20));
      expect(run.out(), run.err()).toMatch(
        new RegExp(`^vllm-sim listening on http://127\\.0\\.0\\.1:\\d+\nvllm-sim KV events: PUB bound at ipc://${dir}/pub\\.sock, replay ROUTER bound at ipc://${dir}/replay\\.sock\n$`),
      );
      run.child.kill('SIGTERM');
      expect(await run.exited).toEqual([0, null]);
    } finally {
      run.child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('exits 2 with a precise message on bad arguments and impossible engine settings', async () => {
    const bad = runMain(['--model', 'm', '--max-num-seqs', 'many']);
    const tooSmall = runMain(['--model', 'm', '--num-gpu-blocks', '10']);
    expect(await bad.exited).toEqual([2, null]);
    expect(bad.err()).toContain("vllm-sim: error: --max-num-seqs must be an integer >= 1, got 'many'");
    expect(await tooSmall.exited).toEqual([2, null]);
    expect(tooSmall.err()).toContain('max_model_len (32768) is larger than the maximum number of tokens that can be stored in KV cache (160');
  });
});
