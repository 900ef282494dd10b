import type { ModelCard } from '../contract/local-answers.js';
import { describe, expect, it } from 'vitest';
import { FakeStream } from '../../test/helpers/fake-stream.js';
import { parseConfig } from '../config/load.js';
import type { Backend } from '../fleet/backend.js';
import { ClusterLoadAssignment } from '../gen/envoy/config/endpoint/v3/endpoint.js';
import { DiscoveryRequest, DiscoveryResponse } from '../gen/envoy/service/discovery/v3/discovery.js';
import type { Logger } from '../support/log.js';
import { createAdsHandler } from './ads-server.js';
import { TYPE_URL } from './encoding.js';
import { buildResources } from './resources.js';
import { createSnapshotCache } from './snapshot-cache.js';

const config = parseConfig({ backends: [] });
const backend = (id: string, model: string, ip: string) => ({ id, endpoint: `${ip}:8000`, models: [model], cards: [] as ModelCard[], health: 'healthy' }) as Backend;
const fleetOf = (...backends: Backend[]) => buildResources(backends, config, 't');
/** The endpoint sets a response carries, by cluster name. */
const namesIn = (response: DiscoveryResponse) => response.resources.map((any) => ClusterLoadAssignment.decode(any.value).clusterName);

function setup() {
  const cache = createSnapshotCache();
  const errors: Array<{ message: string; fields: Record<string, unknown> | undefined }> = [];
  const logger: Logger = { debug() {}, info() {}, warn() {}, error: (message, fields) => errors.push({ message, fields }) };
  const stream = new FakeStream<DiscoveryRequest, DiscoveryResponse>(DiscoveryResponse);
  createAdsHandler(cache, logger)(stream);
  const request = (fields: Partial<DiscoveryRequest>) => stream.send(DiscoveryRequest.fromPartial({ node: { id: 'envoy-1' }, ...fields }));
  return { cache, errors, stream, request, last: () => stream.written.at(-1)! };
}

describe('ADS stream (state of the world)', () => {
  it('ends every open stream on endAll (a replica that is going), and leaves closed ones alone', () => {
    const ads = createAdsHandler(createSnapshotCache(), { debug() {}, info() {}, warn() {}, error() {} });
    const [open, gone] = [new FakeStream<DiscoveryRequest, DiscoveryResponse>(DiscoveryResponse), new FakeStream<DiscoveryRequest, DiscoveryResponse>(DiscoveryResponse)];
    ads(open);
    ads(gone);
    gone.emit('close');
    let endedAfterClose = false;
    gone.end = () => void (endedAfterClose = true);
    ads.endAll();
    expect(open.ended).toBe(true);
    expect(endedAfterClose).toBe(false);
  });

  it('answers a subscription with the current resources, and pushes each new version', () => {
    const { cache, stream, request, last } = setup();
    cache.set(fleetOf(backend('a', 'llama', '10.0.0.1')));
    request({ typeUrl: TYPE_URL.cluster });
    expect(stream.written).toHaveLength(1);
    expect(last()).toMatchObject({ typeUrl: TYPE_URL.cluster, versionInfo: expect.any(String), nonce: expect.any(String) });
    expect(last().resources).toHaveLength(1);
    const first = last();

    cache.set(fleetOf(backend('a', 'llama', '10.0.0.1'), backend('b', 'qwen', '10.0.0.2')));
    expect(stream.written).toHaveLength(2);
    expect(last().resources).toHaveLength(2);
    expect(last().versionInfo).not.toBe(first.versionInfo);
    expect(last().nonce).not.toBe(first.nonce);
  });

  it('takes an ACK silently: nothing is resent for the version Envoy already holds', () => {
    const { cache, stream, request, last, errors } = setup();
    cache.set(fleetOf(backend('a', 'llama', '10.0.0.1')));
    request({ typeUrl: TYPE_URL.cluster });
    request({ typeUrl: TYPE_URL.cluster, versionInfo: last().versionInfo, responseNonce: last().nonce });
    expect(stream.written).toHaveLength(1);
    // The same resources again make no new version either.
    cache.set(fleetOf(backend('a', 'llama', '10.0.0.1')));
    expect(stream.written).toHaveLength(1);
    expect(errors).toEqual([]);
  });

  it("logs a NACK with Envoy's error_detail and does not resend the rejected version, only the next one", () => {
    const { cache, stream, request, last, errors } = setup();
    cache.set(fleetOf(backend('a', 'llama', '10.0.0.1')));
    request({ typeUrl: TYPE_URL.cluster });
    const accepted = last();
    request({ typeUrl: TYPE_URL.cluster, versionInfo: accepted.versionInfo, responseNonce: accepted.nonce });

    cache.set(fleetOf(backend('a', 'llama', '10.0.0.1'), backend('b', 'qwen', '10.0.0.2')));
    const rejected = last();
    // A NACK names the version Envoy still holds, and the nonce of the response it rejects.
    request({ typeUrl: TYPE_URL.cluster, versionInfo: accepted.versionInfo, responseNonce: rejected.nonce, errorDetail: { code: 3, message: 'bad cluster', details: [] } });
    expect(errors).toHaveLength(1);
    expect(errors[0]!.fields).toMatchObject({ node: 'envoy-1', type: TYPE_URL.cluster, version: rejected.versionInfo, error: 'bad cluster' });
    expect(stream.written).toHaveLength(2);
    // Asking again for the same names does not bring the rejected version back.
    request({ typeUrl: TYPE_URL.cluster, versionInfo: accepted.versionInfo, responseNonce: rejected.nonce });
    expect(stream.written).toHaveLength(2);

    cache.set(fleetOf(backend('a', 'llama', '10.0.0.1'), backend('c', 'mistral', '10.0.0.3')));
    expect(stream.written).toHaveLength(3);
    expect(last().versionInfo).not.toBe(rejected.versionInfo);
  });

  it('ignores a request that answers a superseded response (a stale nonce)', () => {
    const { cache, stream, request, last, errors } = setup();
    cache.set(fleetOf(backend('a', 'llama', '10.0.0.1')));
    request({ typeUrl: TYPE_URL.endpoints });
    const stale = last();
    cache.set(fleetOf(backend('a', 'llama', '10.0.0.1'), backend('b', 'qwen', '10.0.0.2')));
    const current = last();
    // A late NACK of the first response, asking for other names: neither counts.
    request({ typeUrl: TYPE_URL.endpoints, responseNonce: stale.nonce, resourceNames: ['model_llama'], errorDetail: { code: 3, message: 'late', details: [] } });
    expect(errors).toEqual([]);
    expect(stream.written).toHaveLength(2);
    // The current nonce is heard: the names it asks for now are what it gets.
    request({ typeUrl: TYPE_URL.endpoints, versionInfo: current.versionInfo, responseNonce: current.nonce, resourceNames: ['model_qwen'] });
    expect(stream.written).toHaveLength(3);
    expect(namesIn(last())).toEqual(['model_qwen']);
  });

  it('sends only the resources a subscription names, and again when the names change', () => {
    const { cache, stream, request, last } = setup();
    cache.set(fleetOf(backend('a', 'llama', '10.0.0.1'), backend('b', 'qwen', '10.0.0.2')));
    request({ typeUrl: TYPE_URL.endpoints, resourceNames: ['model_qwen', 'model_unknown'] });
    expect(namesIn(last())).toEqual(['model_qwen']);
    request({ typeUrl: TYPE_URL.endpoints, versionInfo: last().versionInfo, responseNonce: last().nonce, resourceNames: ['model_llama', 'model_qwen'] });
    expect(stream.written).toHaveLength(2);
    expect(namesIn(last())).toEqual(['model_llama', 'model_qwen']);
  });

  it('stops pushing once the stream has ended', () => {
    const { cache, stream, request } = setup();
    cache.set(fleetOf(backend('a', 'llama', '10.0.0.1')));
    request({ typeUrl: TYPE_URL.cluster });
    stream.finish();
    expect(stream.ended).toBe(true);
    cache.set(fleetOf(backend('b', 'qwen', '10.0.0.2')));
    expect(stream.written).toHaveLength(1);
    expect(stream.writesAfterEnd).toBe(0);
  });
});
