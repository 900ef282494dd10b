import type { ModelCard } from '../contract/local-answers.js';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/load.js';
import type { Backend } from '../fleet/backend.js';
import { Cluster } from '../gen/envoy/config/cluster/v3/cluster.js';
import { ClusterLoadAssignment } from '../gen/envoy/config/endpoint/v3/endpoint.js';
import { inconsistencies } from './consistency.js';
import { buildResources, type Resources } from './resources.js';
import { InconsistentSnapshotError, createSnapshotCache } from './snapshot-cache.js';

const config = parseConfig({ backends: [] });
const backend = (id: string, models: string[], endpoint = '10.0.0.1:8000') => ({ id, endpoint, models, cards: [] as ModelCard[], health: 'healthy' }) as Backend;
const fleet = () => buildResources([backend('a', ['llama-8b', 'org/Model.v2']), backend('b', ['qwen'], '[fd00::2]:8000'), backend('c', ['qwen'], '')], config, 't');

describe('snapshot consistency', () => {
  it('finds nothing wrong with what the router builds', () => {
    expect(inconsistencies(fleet())).toEqual([]);
    expect(inconsistencies(buildResources([], config, 't'))).toEqual([]);
  });

  it('names every contradiction: endpoints missing or orphaned, a route to no cluster, a duplicate, the wrong route table', () => {
    const r = fleet();
    const broken: Resources = {
      clusters: [...r.clusters.filter((c) => c.name !== 'model_qwen'), r.clusters[0]!, Cluster.fromPartial({ name: 'lonely', edsClusterConfig: { serviceName: 'lonely' } })],
      endpoints: [...r.endpoints, ClusterLoadAssignment.fromPartial({ clusterName: 'orphan' })],
      routes: [{ ...r.routes[0]!, name: 'other_routes' }],
    };
    expect(inconsistencies(broken)).toEqual([
      "cluster 'model_llama-8b' is defined twice",
      "cluster 'lonely' reads endpoints 'lonely', which are not in the snapshot",
      "endpoints 'model_qwen' belong to no cluster",
      "endpoints 'orphan' belong to no cluster",
      "route configuration 'other_routes' is not the one the bootstrap asks for ('vllm_routes')",
      "route 'model-qwen' forwards to cluster 'model_qwen', which is not in the snapshot",
    ]);
  });

  it('is checked on every update: an inconsistent snapshot is refused and the last good one stays', () => {
    const cache = createSnapshotCache();
    cache.set(fleet());
    const before = cache.current();
    const r = fleet();
    expect(() => cache.set({ ...r, endpoints: [] })).toThrow(InconsistentSnapshotError);
    expect(cache.current()).toBe(before);
    expect(() => cache.set({ ...r, endpoints: [] })).toThrow(/cluster 'model_qwen' reads endpoints 'model_qwen', which are not in the snapshot/);
  });
});
