import type { Any } from '../gen/google/protobuf/any.js';
import { ApiVersion } from '../gen/envoy/config/core/v3/config_source.js';

export const TYPE_URL = {
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  endpoints: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  routes: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
} as const;

interface Encodable<T> {
  encode(message: T): { finish(): Uint8Array };
}

/** A message as a google.protobuf.Any of the given type. */
export function pack<T>(typeName: string, codec: Encodable<T>, message: T): Any {
  const bytes = codec.encode(message).finish();
  return { typeUrl: `type.googleapis.com/${typeName}`, value: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
}

/** A protobuf Duration. */
export const ms = (millis: number) => ({ seconds: Math.floor(millis / 1000), nanos: (millis % 1000) * 1e6 });

/** A config source that says "over the same ADS stream". */
export const ads = () => ({ configSourceSpecifier: { $case: 'ads' as const, value: {} }, resourceApiVersion: ApiVersion.V3 });
