import { Cluster } from '../gen/envoy/config/cluster/v3/cluster.js';
import { ClusterLoadAssignment } from '../gen/envoy/config/endpoint/v3/endpoint.js';
import { RouteConfiguration } from '../gen/envoy/config/route/v3/route.js';
import type { Any } from '../gen/google/protobuf/any.js';
import { inconsistencies } from './consistency.js';
import { TYPE_URL, pack } from './encoding.js';
import type { Resources } from './resources.js';

/** The resources of one type at one version. Immutable once published. */
export interface TypeSnapshot {
  version: string;
  resources: ReadonlyMap<string, Any>;
}

export type Snapshot = ReadonlyMap<string, TypeSnapshot>;

/** A snapshot that contradicts itself; it is never published. */
export class InconsistentSnapshotError extends Error {
  constructor(readonly problems: string[]) {
    super(`inconsistent xDS snapshot: ${problems.join('; ')}`);
  }
}

interface Encoded {
  name: string;
  any: Any;
}

function encode(resources: Resources): Array<[string, Encoded[]]> {
  return [
    [TYPE_URL.cluster, resources.clusters.map((c) => ({ name: c.name, any: pack('envoy.config.cluster.v3.Cluster', Cluster, c) }))],
    [
      TYPE_URL.endpoints,
      resources.endpoints.map((e) => ({ name: e.clusterName, any: pack('envoy.config.endpoint.v3.ClusterLoadAssignment', ClusterLoadAssignment, e) })),
    ],
    [TYPE_URL.routes, resources.routes.map((r) => ({ name: r.name, any: pack('envoy.config.route.v3.RouteConfiguration', RouteConfiguration, r) }))],
  ];
}

/**
 * Holds the current xDS snapshot, one version per resource type (as go-control-plane's
 * snapshot cache does). An update is checked for consistency, then replaces the snapshot
 * whole; a type's version changes only when its resources' bytes change, so Envoy is not sent
 * no-op updates.
 */
export function createSnapshotCache() {
  let counter = 0;
  let snapshot: Snapshot = new Map();
  const fingerprints = new Map<string, string>();
  const listeners = new Set<(snapshot: Snapshot) => void>();

  const fingerprint = (list: Encoded[]) => list.map((r) => `${r.name}\u0000${r.any.typeUrl}\u0000${r.any.value.toString('base64')}`).join('\u0001');

  return {
    current: (): Snapshot => snapshot,
    /**
     * Publishes new resources; returns the types whose version changed. Throws an
     * InconsistentSnapshotError, and keeps the current snapshot, if they contradict themselves.
     */
    set(resources: Resources): string[] {
      const problems = inconsistencies(resources);
      if (problems.length > 0) throw new InconsistentSnapshotError(problems);
      const next = new Map(snapshot);
      const changed: string[] = [];
      for (const [typeUrl, list] of encode(resources)) {
        const print = fingerprint(list);
        if (fingerprints.get(typeUrl) === print) continue;
        fingerprints.set(typeUrl, print);
        next.set(typeUrl, { version: String(++counter), resources: new Map(list.map((r) => [r.name, r.any])) });
        changed.push(typeUrl);
      }
      if (changed.length > 0) {
        snapshot = next;
        for (const listener of listeners) listener(snapshot);
      }
      return changed;
    },
    subscribe(listener: (snapshot: Snapshot) => void): () => void {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

export type SnapshotCache = ReturnType<typeof createSnapshotCache>;
