import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';

/** The repository root (this file is src/launcher/envoy.ts or dist/launcher/envoy.js). */
export const REPO = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');

/** The Envoy binary scripts/setup.sh installs, or $ENVOY_BIN. */
export function envoyBinary(): string {
  const bin = process.env.ENVOY_BIN ?? join(REPO, '.envoy/envoy');
  if (!existsSync(bin)) throw new Error(`no Envoy binary at ${bin}; run 'npm run setup' (or set ENVOY_BIN)`);
  return bin;
}

export interface EnvoyHandle {
  /** http://HOST:PORT of the first listener. */
  url: string;
  adminUrl: string;
  process: ChildProcess;
  logs(): string;
  stop(): Promise<void>;
}

export interface ControlPlaneAddress {
  host: string;
  port: number;
}

export interface StartEnvoyOptions {
  /**
   * Where the router's gRPC server (ext_proc + ADS) listens. Several replicas are one active
   * and standbys in that order (each its own priority of the cluster), unless `activeActive`.
   */
  controlPlane: ControlPlaneAddress | readonly ControlPlaneAddress[];
  /** Spreads ext_proc streams over all the replicas round robin (ADS holds one stream, to one of them). */
  activeActive?: boolean;
  /** Listener address; port 0 picks a free one. */
  listen?: { host: string; port: number };
  /** Bootstrap to start from (default envoy/envoy.yaml); addresses are rewritten. */
  bootstrap?: string;
  /** Further changes to the parsed bootstrap before it is written. */
  edit?: (bootstrap: any) => void;
  logLevel?: string;
  /** Echo Envoy's output to this process's stderr. */
  inheritOutput?: boolean;
  concurrency?: number;
  /**
   * Runs it in a session of its own: where the kernel shares CPU between sessions
   * (sched_autogroup), it gets its own share, as it would in its own container.
   */
  ownSession?: boolean;
}

/**
 * Starts a real Envoy from one of the repo's bootstrap files with its listener, admin and
 * control-plane addresses rewritten, and resolves once Envoy reports LIVE (its initial xDS
 * fetch is done).
 */
export async function startEnvoy(options: StartEnvoyOptions): Promise<EnvoyHandle> {
  const source = options.bootstrap ?? join(REPO, 'envoy/envoy.yaml');
  const bootstrap = parse(await readFile(source, 'utf8'));
  const listen = options.listen ?? { host: '127.0.0.1', port: 0 };
  bootstrap.admin.address.socket_address = { address: '127.0.0.1', port_value: 0 };
  for (const listener of bootstrap.static_resources.listeners) {
    listener.address.socket_address = { address: listen.host, port_value: listen.port };
  }
  const controlPlanes = Array.isArray(options.controlPlane) ? options.controlPlane : [options.controlPlane as ControlPlaneAddress];
  for (const cluster of bootstrap.static_resources.clusters ?? []) {
    if (cluster.name !== 'router_control_plane') continue;
    const endpoint = (cp: ControlPlaneAddress) => ({ endpoint: { address: { socket_address: { address: cp.host, port_value: cp.port } } } });
    cluster.load_assignment.endpoints = options.activeActive
      ? [{ priority: 0, lb_endpoints: controlPlanes.map(endpoint) }]
      : controlPlanes.map((cp, priority) => ({ priority, lb_endpoints: [endpoint(cp)] }));
  }
  options.edit?.(bootstrap);

  const dir = await mkdtemp(join(tmpdir(), 'vllm-router-envoy-'));
  const configPath = join(dir, 'envoy.yaml');
  const adminPath = join(dir, 'admin-address');
  await writeFile(configPath, stringify(bootstrap));

  const args = ['-c', configPath, '--admin-address-path', adminPath, '--disable-hot-restart', '-l', options.logLevel ?? 'warning'];
  if (options.concurrency) args.push('--concurrency', String(options.concurrency));
  const child = spawn(envoyBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'], detached: options.ownSession ?? false });
  let output = '';
  const keep = (chunk: Buffer) => {
    if (options.inheritOutput) process.stderr.write(chunk);
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
          const host = sa.address.includes(':') ? `[${sa.address}]` : sa.address;
          return { url: `http://${host}:${sa.port_value}`, adminUrl, process: child, logs: () => output, stop };
        }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`envoy did not become ready in 20 s:\n${output.slice(-4000)}`);
  } catch (err) {
    await stop();
    throw err;
  }
}
