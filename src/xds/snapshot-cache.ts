import type { Any } from '../gen/google/protobuf/any.js';
import type { Resource, Resources } from './resources.js';
import { TYPE_URL } from './resources.js';

/** The resources of one type at one version. Immutable once published. */
export interface TypeSnapshot {
  version: string;
  resources: ReadonlyMap<string, Any>;
}

export type Snapshot = ReadonlyMap<string, TypeSnapshot>;

/**
 * Holds the current xDS snapshot, one version per resource type (as go-control-plane's
 * snapshot cache does). An update replaces the snapshot whole; a type's version changes only
 * when its resources' bytes change, so Envoy is not sent no-op updates.
 */
export function createSnapshotCache() {
  let counter = 0;
  let snapshot: Snapshot = new Map();
  const fingerprints = new Map<string, string>();
  const listeners = new Set<(snapshot: Snapshot) => void>();

  const fingerprint = (list: Resource[]) =>
    list.map((r) => `${r.name}\u0000${r.any.typeUrl}\u0000${r.any.value.toString('base64')}`).join('\u0001');

  return {
    current: (): Snapshot => snapshot,
    /** Publishes new resources; returns the types whose version changed. */
    set(resources: Resources): string[] {
      const byType: Array<[string, Resource[]]> = [
        [TYPE_URL.cluster, resources.clusters],
        [TYPE_URL.endpoints, resources.endpoints],
        [TYPE_URL.routes, resources.routes],
      ];
      const next = new Map(snapshot);
      const changed: string[] = [];
      for (const [typeUrl, list] of byType) {
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
