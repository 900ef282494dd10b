import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfigFile, parseConfigText } from './load.js';
import type { RouterConfig } from './schema.js';
import { watchConfigFile } from './watch.js';

function problemsOf(text: string): string[] {
  try {
    parseConfigText(text, 'router.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected the config to be rejected');
}

describe('config', () => {
  it('fills safe defaults: loopback listeners, sane scraping', () => {
    const config = parseConfigText('backends:\n  - url: http://127.0.0.1:8001\n    models: [llama-8b]\n');
    expect(config.grpc).toEqual({ host: '127.0.0.1', port: 18000 });
    expect(config.admin.host).toBe('127.0.0.1');
    expect(config.scraping.intervalMs).toBe(200);
    expect(config.backends[0]).toMatchObject({ url: 'http://127.0.0.1:8001', models: ['llama-8b'] });
    // Learned from the server's metrics unless the config says.
    expect(config.backends[0]!.capacity).toBeUndefined();
  });

  it('accepts an empty file as a fleet with no backends', () => {
    expect(parseConfigText('').backends).toEqual([]);
  });

  it('names the bad field', () => {
    expect(problemsOf('backends:\n  - url: ftp://x:1\n')).toEqual([expect.stringMatching(/^backends\[0\]\.url: must start with http/)]);
    expect(problemsOf('backends:\n  - url: http://a:1/v1\n')[0]).toMatch(/^backends\[0\]\.url: must be a bare origin/);
    expect(problemsOf('scraping:\n  intervalMs: 5\n')[0]).toMatch(/^scraping\.intervalMs: /);
    expect(problemsOf('backends:\n  - url: http://a:1\n    modles: [x]\n')[0]).toBe("backends[0]: unknown field 'modles'");
    expect(problemsOf('grpc: {port: "x"}')[0]).toMatch(/^grpc\.port: /);
    expect(problemsOf('scheduler:\n  prefix: { blockBytes: 60 }\n')[0]).toMatch(/^scheduler\.prefix\.blockBytes: .*multiple of 8/);
    // Prices an older version took, now learned: refused with the reason.
    expect(problemsOf('scheduler:\n  cost: { runningRequestTokens: 4 }\n')[0]).toMatch(/^scheduler\.cost\.runningRequestTokens: no longer a setting: the router learns/);
  });

  it('validates DNS discovery groups', () => {
    const config = parseConfigText('discovery:\n  dns:\n    - { name: vllm.inference.svc, port: 8000 }\n');
    expect(config.discovery.dns[0]).toMatchObject({ name: 'vllm.inference.svc', port: 8000, scheme: 'http', refreshMs: 5000 });
    expect(problemsOf('discovery:\n  dns:\n    - { name: "bad name!", port: 8000 }\n')[0]).toMatch(/^discovery\.dns\[0\]\.name: must be a DNS name/);
    expect(problemsOf('discovery:\n  dns:\n    - { name: a.b }\n')[0]).toMatch(/^discovery\.dns\[0\]\.port: /);
  });

  it('validates where backends publish KV events, refusing wildcards', () => {
    const config = parseConfigText('backends:\n  - url: http://10.0.0.5:8000\n    kvEvents: { endpoint: "tcp://10.0.0.5:5557", replayEndpoint: "tcp://10.0.0.5:5558" }\n');
    expect(config.backends[0]!.kvEvents).toEqual({ endpoint: 'tcp://10.0.0.5:5557', replayEndpoint: 'tcp://10.0.0.5:5558', bind: false, topic: '', dataParallelSize: 1 });
    expect(problemsOf('backends:\n  - url: http://a:1\n    kvEvents: { endpoint: "tcp://*:5557" }\n')[0]).toMatch(/^backends\[0\]\.kvEvents\.endpoint: must name a host/);
    expect(problemsOf('backends:\n  - url: http://a:1\n    kvEvents: { endpoint: "http://a:5557" }\n')[0]).toMatch(/^backends\[0\]\.kvEvents\.endpoint: must be a ZMQ endpoint/);
    const dns = parseConfigText('discovery:\n  dns:\n    - { name: vllm.svc, port: 8000, kvEvents: { port: 5557, replayPort: 5558 } }\n');
    expect(dns.discovery.dns[0]!.kvEvents).toEqual({ port: 5557, replayPort: 5558, topic: '', dataParallelSize: 1 });
    expect(problemsOf('backends:\n  - url: http://a:1\n    kvEvents: { endpoint: "ipc:///tmp/kv", dataParallelSize: 2 }\n')[0]).toMatch(
      /^backends\[0\]\.kvEvents\.dataParallelSize: dataParallelSize above 1 needs tcp:\/\/ endpoints/,
    );
  });

  it('validates flow control: header names, their clash, the wait Envoy allows', () => {
    expect(parseConfigText('').flowControl).toEqual({ enabled: false, priorityHeader: 'x-request-priority', defaultPriority: 0, tenantHeader: 'x-tenant-id', maxQueued: 1024, maxWaitMs: 30_000 });
    expect(problemsOf('flowControl: { enabled: true, tenantHeader: X-Tenant }\n')[0]).toMatch(/^flowControl\.tenantHeader: must be a lower-case HTTP header name/);
    expect(problemsOf('flowControl: { priorityHeader: x-envoy-priority }\n')[0]).toMatch(/^flowControl\.priorityHeader: must not be a header Envoy or the router sets/);
    expect(problemsOf('flowControl: { tenantHeader: x-request-priority }\n')[0]).toMatch(/^flowControl\.tenantHeader: priorityHeader and tenantHeader must differ/);
    expect(problemsOf('flowControl: { maxWaitMs: 90000 }\n')[0]).toMatch(/^flowControl\.maxWaitMs: /);
  });

  it('validates peer addresses', () => {
    expect(parseConfigText('').peers).toEqual({ addresses: [] });
    expect(parseConfigText('peers: { addresses: ["10.0.0.2:18000", "router-1.ns.svc:18000", "[::1]:18000"] }\n').peers.addresses).toHaveLength(3);
    expect(problemsOf('peers: { addresses: ["10.0.0.2"] }\n')[0]).toMatch(/^peers\.addresses\[0\]: must be host:port/);
    expect(problemsOf('peers: { addresses: ["http://10.0.0.2:18000"] }\n')[0]).toMatch(/^peers\.addresses\[0\]: must be host:port/);
    expect(problemsOf('peers: { addresses: ["a:70000"] }\n')[0]).toMatch(/^peers\.addresses\[0\]: port must be at most 65535/);
  });

  it('reads tokenizer directories relative to the config file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'config-'));
    const path = join(dir, 'router.yaml');
    await writeFile(path, 'backends:\n  - url: http://a:1\ntokenizers:\n  m: models/m\n  n: /abs/n\n');
    expect((await loadConfigFile(path)).tokenizers).toEqual({ m: join(dir, 'models/m'), n: '/abs/n' });
    await rm(dir, { recursive: true, force: true });
  });

  it('rejects a backend listed twice', () => {
    const problems = problemsOf('backends:\n  - url: http://a:1\n  - url: http://a:1\n');
    expect(problems[0]).toMatch(/^backends\[1\]\.url: duplicates backends\[0\]/);
  });

  it('reports YAML syntax errors with a line number', () => {
    expect(problemsOf('backends: [\n  - url')[0]).toMatch(/^YAML .* line \d+/);
    expect(problemsOf('a: 1\na: 2\n')[0]).toMatch(/^YAML DUPLICATE_KEY/);
  });
});

describe('config watcher', () => {
  it('applies valid changes and keeps the last good config on a bad one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'router-config-'));
    const path = join(dir, 'router.yaml');
    await writeFile(path, 'backends:\n  - url: http://127.0.0.1:1\n    models: [a]\n');
    const applied: RouterConfig[] = [];
    const errors: Error[] = [];
    const watcher = watchConfigFile({ path, onConfig: (c) => applied.push(c), onError: (e) => errors.push(e), debounceMs: 20 });
    try {
      await watcher.reload();
      expect(applied).toHaveLength(1);

      await writeFile(path, 'backends:\n  - url: nope\n');
      await expect.poll(() => errors.length, { timeout: 3000 }).toBe(1);
      expect(errors[0]!.message).toMatch(/backends\[0\]\.url/);
      expect(applied).toHaveLength(1);

      // Editors save by writing a new file and renaming it over the old one.
      await writeFile(`${path}.tmp`, 'backends:\n  - url: http://127.0.0.1:2\n    models: [b]\n');
      await rename(`${path}.tmp`, path);
      await expect.poll(() => applied.length, { timeout: 3000 }).toBe(2);
      expect(applied[1]!.backends[0]!.models).toEqual(['b']);

      // An empty or truncated file (an editor or cp mid-write) routes nothing: refused too.
      for (const [text, problem] of [
        ['', /^backends: the file is empty; a router needs at least one backend or discovery source/],
        ['grpc: { host: 127.0.0.1, port: 18000 }\nscraping:\n  intervalMs: 200\n', /^backends: it names no backends and no discovery/],
      ] as const) {
        const before = errors.length;
        await writeFile(path, text);
        await expect.poll(() => errors.length, { timeout: 3000 }).toBe(before + 1);
        expect((errors.at(-1) as ConfigError).problems[0]).toMatch(problem);
      }
      expect(applied).toHaveLength(2);
      // A discovery source alone is a fleet.
      await writeFile(path, 'discovery:\n  dns:\n    - { name: vllm.inference.svc, port: 8000 }\n');
      await expect.poll(() => applied.length, { timeout: 3000 }).toBe(3);
    } finally {
      watcher.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
