// Checks the generated Envoy API code (src/gen, from `npm run gen:protos`): wire round trips of
// the messages the control plane builds, and the grpc-js service definitions it serves.
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';

import {
  Cluster,
  Cluster_DiscoveryType,
} from '../../src/gen/envoy/config/cluster/v3/cluster.js';
import { HeaderValueOption_HeaderAppendAction } from '../../src/gen/envoy/config/core/v3/base.js';
import { LeastRequest } from '../../src/gen/envoy/extensions/load_balancing_policies/least_request/v3/least_request.js';
import { OverrideHost } from '../../src/gen/envoy/extensions/load_balancing_policies/override_host/v3/override_host.js';
import {
  AggregatedDiscoveryServiceService,
  type AggregatedDiscoveryServiceServer,
} from '../../src/gen/envoy/service/discovery/v3/ads.js';
import {
  type ExternalProcessorServer,
  ExternalProcessorService,
  ProcessingResponse,
} from '../../src/gen/envoy/service/ext_proc/v3/external_processor.js';
import type { Any } from '../../src/gen/google/protobuf/any.js';

const OVERRIDE_HOST_TYPE = 'envoy.extensions.load_balancing_policies.override_host.v3.OverrideHost';
const LEAST_REQUEST_TYPE = 'envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest';

// With env=node, bytes fields (Any.value included) are typed as Buffer; encode() returns a
// Uint8Array, so wrap it without copying.
function pack(typeName: string, bytes: Uint8Array): Any {
  return {
    typeUrl: `type.googleapis.com/${typeName}`,
    value: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
  };
}

describe('generated ext_proc messages', () => {
  it('round-trips a ProcessingResponse with a header mutation and clear_route_cache', () => {
    const response = ProcessingResponse.fromPartial({
      response: {
        $case: 'requestHeaders',
        value: {
          response: {
            headerMutation: {
              setHeaders: [
                {
                  header: { key: 'x-gateway-destination-endpoint', rawValue: Buffer.from('10.0.0.7:8000') },
                  appendAction: HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
                },
              ],
              removeHeaders: ['x-internal'],
            },
            clearRouteCache: true,
          },
        },
      },
      dynamicMetadata: { 'envoy.lb': { 'x-gateway-destination-endpoint': '10.0.0.7:8000' } },
    });

    const bytes = ProcessingResponse.encode(response).finish();
    expect(bytes.length).toBeGreaterThan(0);
    const decoded = ProcessingResponse.decode(bytes);

    expect(decoded.response?.$case).toBe('requestHeaders');
    if (decoded.response?.$case !== 'requestHeaders') throw new Error('unexpected oneof case');
    const common = decoded.response.value.response;
    expect(common?.clearRouteCache).toBe(true);
    const header = common?.headerMutation?.setHeaders[0]?.header;
    expect(header?.key).toBe('x-gateway-destination-endpoint');
    expect(header?.value).toBe('');
    expect(header?.rawValue.toString('utf8')).toBe('10.0.0.7:8000');
    expect(common?.headerMutation?.setHeaders[0]?.appendAction).toBe(
      HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
    );
    expect(common?.headerMutation?.removeHeaders).toEqual(['x-internal']);
    expect(decoded.dynamicMetadata).toEqual({ 'envoy.lb': { 'x-gateway-destination-endpoint': '10.0.0.7:8000' } });
    expect(ProcessingResponse.toJSON(decoded)).toMatchObject({
      requestHeaders: { response: { clearRouteCache: true } },
    });
  });
});

describe('generated cluster messages', () => {
  it('round-trips a Cluster whose load_balancing_policy is override_host with a least_request fallback', () => {
    const leastRequest = LeastRequest.fromPartial({ choiceCount: 2 });
    const overrideHost = OverrideHost.fromPartial({
      overrideHostSources: [{ header: 'x-gateway-destination-endpoint' }],
      fallbackPolicy: {
        policies: [
          {
            typedExtensionConfig: {
              name: 'envoy.load_balancing_policies.least_request',
              typedConfig: pack(LEAST_REQUEST_TYPE, LeastRequest.encode(leastRequest).finish()),
            },
          },
        ],
      },
    });
    const cluster = Cluster.fromPartial({
      name: 'vllm',
      clusterDiscoveryType: { $case: 'type', value: Cluster_DiscoveryType.STATIC },
      connectTimeout: { seconds: 1, nanos: 500_000_000 },
      loadBalancingPolicy: {
        policies: [
          {
            typedExtensionConfig: {
              name: 'envoy.load_balancing_policies.override_host',
              typedConfig: pack(OVERRIDE_HOST_TYPE, OverrideHost.encode(overrideHost).finish()),
            },
          },
        ],
      },
    });

    const decoded = Cluster.decode(Cluster.encode(cluster).finish());
    expect(decoded.name).toBe('vllm');
    expect(decoded.clusterDiscoveryType).toEqual({ $case: 'type', value: Cluster_DiscoveryType.STATIC });
    expect(decoded.connectTimeout).toEqual({ seconds: 1, nanos: 500_000_000 });

    const policy = decoded.loadBalancingPolicy?.policies[0]?.typedExtensionConfig;
    expect(policy?.name).toBe('envoy.load_balancing_policies.override_host');
    expect(policy?.typedConfig?.typeUrl).toBe(`type.googleapis.com/${OVERRIDE_HOST_TYPE}`);
    const decodedOverride = OverrideHost.decode(policy?.typedConfig?.value ?? new Uint8Array());
    expect(decodedOverride.overrideHostSources).toEqual([
      { header: 'x-gateway-destination-endpoint', metadata: undefined },
    ]);

    const fallback = decodedOverride.fallbackPolicy?.policies[0]?.typedExtensionConfig;
    expect(fallback?.name).toBe('envoy.load_balancing_policies.least_request');
    expect(fallback?.typedConfig?.typeUrl).toBe(`type.googleapis.com/${LEAST_REQUEST_TYPE}`);
    const decodedLeastRequest = LeastRequest.decode(fallback?.typedConfig?.value ?? new Uint8Array());
    // UInt32Value is unwrapped to number | undefined.
    expect(decodedLeastRequest.choiceCount).toBe(2);
    expect(decodedLeastRequest.activeRequestBias).toBeUndefined();
  });
});

describe('generated grpc-js service definitions', () => {
  it('describes the ext_proc and ADS bidirectional streams', () => {
    expect(ExternalProcessorService.process.path).toBe('/envoy.service.ext_proc.v3.ExternalProcessor/Process');
    expect(ExternalProcessorService.process.requestStream).toBe(true);
    expect(ExternalProcessorService.process.responseStream).toBe(true);

    const sotw = AggregatedDiscoveryServiceService.streamAggregatedResources;
    expect(sotw.path).toBe('/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources');
    expect(sotw.requestStream).toBe(true);
    expect(sotw.responseStream).toBe(true);
    expect(AggregatedDiscoveryServiceService.deltaAggregatedResources.path).toBe(
      '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources',
    );

    // The definitions and the typed server interfaces plug straight into grpc-js (no port is bound).
    const extProc: ExternalProcessorServer = { process: (call) => call.end() };
    const ads: AggregatedDiscoveryServiceServer = {
      streamAggregatedResources: (call) => call.end(),
      deltaAggregatedResources: (call) => call.end(),
    };
    const server = new grpc.Server();
    server.addService(ExternalProcessorService, extProc);
    server.addService(AggregatedDiscoveryServiceService, ads);
    server.forceShutdown();
  });
});
