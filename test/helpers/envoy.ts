import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse, stringify } from 'yaml';

export const REPO = resolve(import.meta.dirname, '../..');

/** The Envoy binary scripts/setup.sh installs (or ENVOY_BIN). */
export function envoyBinary(): string {
  const bin = process.env.ENVOY_BIN ?? join(REPO, '.envoy/envoy');
  if (!existsSync(bin)) throw new Error(`no Envoy binary at ${bin}; run 'npm run setup' first`);
  return bin;
}

export interface EnvoyHandle {
  /** http://127.0.0.1:PORT of the vllm listener. */
  url: string;
  adminUrl: string;
  process: ChildProcess;
  logs(): string;
  stop(): Promise<void>;
}

export interface StartEnvoyOptions {
  controlPlanePort: number;
  /** Bootstrap to start from; its listener, admin and control-plane addresses are rewritten. */
  bootstrap?: string;
  /** Changes to the parsed bootstrap before it is written. */
  edit?: (bootstrap: any) => void;
  logLevel?: string;
}

/**
 * Starts a real Envoy from one of the repo's bootstrap files, rewritten to listen on
 * ephemeral loopback ports and to reach the control plane at the given port.
 */
export async function startEnvoy(options: StartEnvoyOptions): Promise<EnvoyHandle> {
  const source = options.bootstrap ?? join(REPO, 'envoy/envoy.yaml');
  const bootstrap = parse(await readFile(source, 'utf8'));
  bootstrap.admin.address.socket_address = { address: '127.0.0.1', port_value: 0 };
  for (const listener of bootstrap.static_resources.listeners) {
    listener.address.socket_address = { address: '127.0.0.1', port_value: 0 };
  }
  for (const cluster of bootstrap.static_resources.clusters ?? []) {
    if (cluster.name !== 'router_control_plane') continue;
    for (const group of cluster.load_assignment.endpoints) {
      for (const ep of group.lb_endpoints) ep.endpoint.address.socket_address = { address: '127.0.0.1', port_value: options.controlPlanePort };
    }
  }
  options.edit?.(bootstrap);

  const dir = await mkdtemp(join(tmpdir(), 'envoy-test-'));
  const configPath = join(dir, 'envoy.yaml');
  const adminPath = join(dir, 'admin-address');
  await writeFile(configPath, stringify(bootstrap));

  const child = spawn(
    envoyBinary(),
    ['-c', configPath, '--admin-address-path', adminPath, '--disable-hot-restart', '--concurrency', '1', '-l', options.logLevel ?? 'warning'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const keep = (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  let exited = false;
  child.on('exit', () => (exited = true));

  const stop = async () => {
    if (!exited) {
      const done = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await done;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };

  try {
    const deadline = Date.now() + 20_000;
    let adminUrl = '';
    let url = '';
    while (Date.now() < deadline) {
      if (exited) throw new Error(`envoy exited during startup:\n${output.slice(-4000)}`);
      if (!adminUrl && existsSync(adminPath)) {
        const address = (await readFile(adminPath, 'utf8')).trim();
        if (address) adminUrl = `http://${address}`;
      }
      if (adminUrl) {
        const ready = await fetch(`${adminUrl}/ready`).then((r) => r.text(), () => '');
        if (ready.trim() === 'LIVE') {
          const listeners = (await fetch(`${adminUrl}/listeners?format=json`).then((r) => r.json())) as {
            listener_statuses: Array<{ local_address: { socket_address: { address: string; port_value: number } } }>;
          };
          const sa = listeners.listener_statuses[0]!.local_address.socket_address;
          url = `http://${sa.address}:${sa.port_value}`;
          break;
        }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!url) throw new Error(`envoy did not become ready in 20 s:\n${output.slice(-4000)}`);
    return { url, adminUrl, process: child, logs: () => output, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Reads one counter or gauge from Envoy's admin /stats. */
export async function envoyStat(adminUrl: string, name: string): Promise<number> {
  const text = await fetch(`${adminUrl}/stats?filter=${encodeURIComponent(`^${name.replace(/\./g, '\\.')}$`)}`).then((r) => r.text());
  const match = /: (\d+)/.exec(text);
  return match ? Number(match[1]) : 0;
}
