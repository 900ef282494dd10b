import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A local stand-in for the Kubernetes API server: the real list-and-watch protocol for pods
 * in one namespace (GET .../pods with labelSelector, then ?watch=true&resourceVersion=N
 * streaming one JSON event per line), with real object shapes. Tests drive it by adding,
 * changing and deleting pods, and by breaking it.
 */
export interface FakeKubeApi {
  url: string;
  addPod(name: string, ip: string, labels: Record<string, string>, ready?: boolean): void;
  setReady(name: string, ready: boolean): void;
  deletePod(name: string): void;
  /** Writes a line that is not a watch event to every open watch. */
  sendGarbage(): void;
  /** Ends every open watch, as an API server does on timeout or restart. */
  dropWatches(): void;
  close(): Promise<void>;
}

interface Pod {
  apiVersion: 'v1';
  kind: 'Pod';
  metadata: { name: string; namespace: string; uid: string; resourceVersion: string; labels: Record<string, string> };
  spec: { containers: Array<{ name: string; image: string }> };
  status: { phase: string; podIP: string; conditions: Array<{ type: string; status: string }> };
}

function matches(labels: Record<string, string>, selector: string | null): boolean {
  if (!selector) return true;
  return selector.split(',').every((term) => {
    const [key, value] = term.split('=');
    return labels[key!.trim()] === value?.trim();
  });
}

export async function startFakeKubeApi(namespace: string): Promise<FakeKubeApi> {
  let resourceVersion = 1;
  const pods = new Map<string, Pod>();
  const watches = new Set<{ res: ServerResponse; selector: string | null }>();

  const emit = (type: 'ADDED' | 'MODIFIED' | 'DELETED', pod: Pod) => {
    for (const w of watches) if (matches(pod.metadata.labels, w.selector)) w.res.write(`${JSON.stringify({ type, object: pod })}\n`);
  };
  const bump = (pod: Pod) => {
    pod.metadata.resourceVersion = String(++resourceVersion);
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== `/api/v1/namespaces/${namespace}/pods`) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 }));
      return;
    }
    const selector = url.searchParams.get('labelSelector');
    if (url.searchParams.get('watch') === 'true') {
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      const watch = { res, selector };
      watches.add(watch);
      req.on('close', () => watches.delete(watch));
      return;
    }
    const items = [...pods.values()].filter((p) => matches(p.metadata.labels, selector));
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: String(resourceVersion) }, items }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));

  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    addPod(name, ip, labels, ready = true) {
      const pod: Pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace, uid: `uid-${name}`, resourceVersion: '', labels },
        spec: { containers: [{ name: 'vllm', image: 'vllm/vllm-openai:latest' }] },
        status: { phase: 'Running', podIP: ip, conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
      };
      bump(pod);
      pods.set(name, pod);
      emit('ADDED', pod);
    },
    setReady(name, ready) {
      const pod = pods.get(name)!;
      pod.status.conditions = [{ type: 'Ready', status: ready ? 'True' : 'False' }];
      bump(pod);
      emit('MODIFIED', pod);
    },
    deletePod(name) {
      const pod = pods.get(name)!;
      pods.delete(name);
      bump(pod);
      emit('DELETED', pod);
    },
    sendGarbage() {
      for (const w of watches) w.res.write('{"type":"ADDED","object":{"kind":"Pod"\n{not json at all}\n');
    },
    dropWatches() {
      for (const w of watches) w.res.end();
      watches.clear();
    },
    async close() {
      for (const w of watches) w.res.end();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
