import { spawn } from 'node:child_process';
import { once } from 'node:events';
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

  it('exits 2 with a precise message on bad arguments and impossible engine settings', async () => {
    const bad = runMain(['--model', 'm', '--max-num-seqs', 'many']);
    const tooSmall = runMain(['--model', 'm', '--num-gpu-blocks', '10']);
    expect(await bad.exited).toEqual([2, null]);
    expect(bad.err()).toContain("vllm-sim: error: --max-num-seqs must be an integer >= 1, got 'many'");
    expect(await tooSmall.exited).toEqual([2, null]);
    expect(tooSmall.err()).toContain('max_model_len (32768) is larger than the maximum number of tokens that can be stored in KV cache (160');
  });
});
