import { CoreV1Api, KubeConfig, makeInformer, type Informer, type ObjectCache, type V1Pod } from '@kubernetes/client-node';
import type { KubernetesGroupConfig } from '../../config/schema.js';
import type { Logger } from '../../support/log.js';

/** A ready pod that serves as a backend. */
export interface PodEndpoint {
  pod: string;
  ip: string;
  /** From the configured model label, if the pod has it. */
  model: string | undefined;
}

function kubeConfig(group: KubernetesGroupConfig): KubeConfig {
  const kc = new KubeConfig();
  if (group.apiServer) {
    kc.loadFromOptions({
      // client-node refuses plain http unless told that TLS is off on purpose.
      clusters: [{ name: 'cluster', server: group.apiServer, skipTLSVerify: group.apiServer.startsWith('http://') }],
      users: [{ name: 'router' }],
      contexts: [{ name: 'router', cluster: 'cluster', user: 'router' }],
      currentContext: 'router',
    });
  } else {
    kc.loadFromDefault(); // in-cluster service account when running in a pod
  }
  return kc;
}

export function isReady(pod: V1Pod): boolean {
  return (
    pod.status?.phase === 'Running' &&
    !pod.metadata?.deletionTimestamp &&
    typeof pod.status.podIP === 'string' &&
    pod.status.podIP !== '' &&
    (pod.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True')
  );
}

/**
 * Follows the ready pods a label selector picks, with the Kubernetes list-and-watch protocol.
 * A watch that fails is restarted; until then the last known pods stay, so an API hiccup
 * never takes a healthy backend out of rotation.
 */
export function watchPods(group: KubernetesGroupConfig, logger: Logger, onChange: (endpoints: PodEndpoint[]) => void): { stop(): void } {
  const kc = kubeConfig(group);
  const api = kc.makeApiClient(CoreV1Api);
  const path = `/api/v1/namespaces/${group.namespace}/pods`;
  const informer: Informer<V1Pod> & ObjectCache<V1Pod> = makeInformer(
    kc,
    path,
    () => api.listNamespacedPod({ namespace: group.namespace, labelSelector: group.labelSelector }),
    group.labelSelector,
  );
  let stopped = false;
  let restart: NodeJS.Timeout | undefined;
  const warned = new Set<string>();
  let last = '';

  const publish = () => {
    const endpoints: PodEndpoint[] = [];
    for (const pod of informer.list()) {
      const name = pod.metadata?.name ?? '?';
      if (!isReady(pod)) continue;
      const model = group.modelLabel ? pod.metadata?.labels?.[group.modelLabel] : undefined;
      if (group.modelLabel && !model && !group.models && !warned.has(name)) {
        warned.add(name);
        logger.warn('pod has no model label; its models are read from /v1/models', { pod: name, label: group.modelLabel });
      }
      endpoints.push({ pod: name, ip: pod.status!.podIP!, model });
    }
    endpoints.sort((a, b) => a.pod.localeCompare(b.pod));
    const key = JSON.stringify(endpoints);
    if (key === last) return;
    last = key;
    onChange(endpoints);
  };

  informer.on('add', publish);
  informer.on('update', publish);
  informer.on('delete', publish);
  informer.on('connect', publish);
  informer.on('error', (err: unknown) => {
    if (stopped) return;
    logger.warn('kubernetes watch failed; keeping the last known pods and retrying', {
      namespace: group.namespace,
      selector: group.labelSelector,
      error: err instanceof Error ? err.message : String(err),
    });
    clearTimeout(restart);
    restart = setTimeout(() => {
      if (!stopped) informer.start().catch(() => undefined);
    }, 1000);
  });
  informer.start().catch(() => undefined); // failures arrive as 'error' events
  return {
    stop() {
      stopped = true;
      clearTimeout(restart);
      void informer.stop();
    },
  };
}
