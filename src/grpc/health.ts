import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import type { MessageCodec, StreamingMethod } from './server.js';

/**
 * The standard gRPC health service (grpc.health.v1.Health/Check), which Envoy's gRPC health
 * checker calls. With several router replicas, Envoy's bootstrap puts one in front and the
 * others behind it as standbys (cluster priorities): a replica that stops answering this, or
 * answers NOT_SERVING, hands ext_proc and xDS to the next within a health-check interval.
 */
export const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';

/** grpc.health.v1.HealthCheckResponse.ServingStatus */
export const ServingStatus = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;
export type ServingStatus = (typeof ServingStatus)[keyof typeof ServingStatus];

export interface HealthCheckRequest {
  /** A service name, or '' for the server as a whole (what Envoy asks unless configured). */
  service: string;
}

export interface HealthCheckResponse {
  status: ServingStatus;
}

export const healthCheckRequestCodec: MessageCodec<HealthCheckRequest> = {
  encode(m) {
    const writer = new BinaryWriter();
    if (m.service !== '') writer.uint32(10).string(m.service);
    return { finish: () => writer.finish() };
  },
  decode(bytes) {
    const reader = new BinaryReader(bytes);
    let service = '';
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      if (field === 1 && wireType === WireType.LengthDelimited) service = reader.string();
      else reader.skip(wireType);
    }
    return { service };
  },
};

export const healthCheckResponseCodec: MessageCodec<HealthCheckResponse> = {
  encode(m) {
    const writer = new BinaryWriter();
    if (m.status !== ServingStatus.UNKNOWN) writer.uint32(8).int32(m.status);
    return { finish: () => writer.finish() };
  },
  decode(bytes) {
    const reader = new BinaryReader(bytes);
    let status: number = ServingStatus.UNKNOWN;
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      if (field === 1 && wireType === WireType.Varint) status = reader.int32();
      else reader.skip(wireType);
    }
    return { status: status as ServingStatus };
  },
};

export interface HealthService {
  /** The Check method: SERVING until drain() begins, NOT_SERVING after; unknown services SERVICE_UNKNOWN. */
  method: StreamingMethod<HealthCheckRequest, HealthCheckResponse>;
  /**
   * Answers NOT_SERVING from now on, and resolves once a health checker has been told so (so
   * Envoy has moved new streams to a standby before this replica stops taking them), or after
   * `maxMs`; at once if nobody has checked within the last few seconds.
   */
  drain(maxMs: number): Promise<void>;
}

/** Checks within this long count as a health checker that will come back for the news. */
const CHECKED_RECENTLY_MS = 5_000;
/** After a checker has heard NOT_SERVING: Envoy's main thread hands the change to its workers, which may be opening a stream here meanwhile. */
const SETTLE_MS = 250;

/**
 * `servedPaths`: the server's other methods (`/package.Service/Method`); health is answered for
 * their services and for the server as a whole (''), SERVICE_UNKNOWN for any other name.
 */
export function createHealthService(servedPaths: readonly string[], now: () => number = Date.now): HealthService {
  const knownServices = new Set(['', ...servedPaths.map((path) => path.split('/')[1]!)]);
  let serving = true;
  let lastCheckAt = -Infinity;
  const toldNotServing = new Set<() => void>();
  return {
    method: {
      path: HEALTH_CHECK_PATH,
      requests: healthCheckRequestCodec,
      responses: healthCheckResponseCodec,
      handler(call) {
        let answered = false;
        call.on('data', (request) => {
          if (answered) return;
          answered = true;
          lastCheckAt = now();
          const known = knownServices.has(request.service);
          call.write({ status: !known ? ServingStatus.SERVICE_UNKNOWN : serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING });
          call.end();
          if (known && !serving) for (const resolve of toldNotServing) resolve();
        });
        call.on('error', () => {});
      },
    },
    drain(maxMs) {
      serving = false;
      if (now() - lastCheckAt > CHECKED_RECENTLY_MS || maxMs <= 0) return Promise.resolve();
      return new Promise((resolve) => {
        const startedAt = now();
        const timer = setTimeout(resolve, maxMs);
        const told = () => {
          toldNotServing.delete(told);
          clearTimeout(timer);
          setTimeout(resolve, Math.max(0, Math.min(SETTLE_MS, maxMs - (now() - startedAt))));
        };
        toldNotServing.add(told);
      });
    },
  };
}
