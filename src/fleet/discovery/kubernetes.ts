import { kvEventsAt } from '../../config/kv-events-schema.js';
import type { BackendConfig, KubernetesGroupConfig } from '../../config/schema.js';
import type { Logger } from '../../support/log.js';
import { hostLiteral } from '../backend.js';
import type { PodEndpoint, watchPods } from './kubernetes-pods.js';
import type { DiscoverySource } from './source.js';

export interface KubernetesDiscoveryOptions {
  logger: Logger;
  /** The ready pods of some group changed. */
  onChange: () => void;
}

const keyOf = (g: KubernetesGroupConfig) => `${g.apiServer ?? ''}|${g.namespace}|${g.labelSelector}|${g.port}`;

/** One backend per ready pod a label selector picks, followed with list + watch. */
export function createKubernetesDiscovery(options: KubernetesDiscoveryOptions): DiscoverySource {
  const { logger, onChange } = options;
  const members = new Map<string, PodEndpoint[]>();
  const watches = new Map<string, { stop(): void }>();

  return {
    follow(config) {
      const keep = new Set(config.discovery.kubernetes.map(keyOf));
      for (const [key, watch] of watches) {
        if (keep.has(key)) continue;
        watch.stop();
        watches.delete(key);
        members.delete(key);
      }
      for (const g of config.discovery.kubernetes) {
        const key = keyOf(g);
        if (watches.has(key)) continue;
        watches.set(
          key,
          watchPodsWhenLoaded(g, logger, (pods) => {
            logger.info('kubernetes discovery', { namespace: g.namespace, selector: g.labelSelector, pods: pods.map((p) => p.pod) });
            members.set(key, pods);
            if (watches.has(key)) onChange();
          }),
        );
      }
    },
    backends(config) {
      const out: BackendConfig[] = [];
      for (const g of config.discovery.kubernetes) {
        for (const pod of members.get(keyOf(g)) ?? []) {
          const models = pod.model ? [pod.model] : g.models;
          out.push({ name: `${g.namespace}/${pod.pod}`, url: `${g.scheme}://${hostLiteral(pod.ip)}:${g.port}`, ...(models ? { models } : {}), ...(g.capacity ? { capacity: g.capacity } : {}), ...(g.kvEvents ? { kvEvents: kvEventsAt(hostLiteral(pod.ip), g.kvEvents) } : {}) });
        }
      }
      return out;
    },
    stop() {
      for (const watch of watches.values()) watch.stop();
      watches.clear();
    },
  };
}

/**
 * The Kubernetes client is loaded only when a config asks for pod discovery: it holds tens of
 * MiB of heap, which every full garbage collection of the router would otherwise walk.
 */
const watchPodsWhenLoaded: typeof watchPods = (group, logger, onChange) => {
  let watch: { stop(): void } | undefined;
  let stopped = false;
  import('./kubernetes-pods.js').then(
    (k8s) => {
      if (!stopped) watch = k8s.watchPods(group, logger, onChange);
    },
    (err: Error) => logger.error('cannot load the Kubernetes client', { error: err }),
  );
  return {
    stop() {
      stopped = true;
      watch?.stop();
    },
  };
};
