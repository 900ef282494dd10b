/** Where model servers publish their KV cache events: the config's part of it, validated with zod. */
import { z } from 'zod';

const zmqEndpoint = z
  .string()
  .regex(/^(tcp:\/\/.+:\d+|ipc:\/\/.+)$/, 'must be a ZMQ endpoint: tcp://HOST:PORT or ipc:///path')
  .refine((value) => !value.includes('*'), 'must name a host: a wildcard binds every interface (give the address to bind, e.g. tcp://127.0.0.1:5557)');

/** vLLM's --data-parallel-size: each rank publishes on the configured ports plus its rank. */
const dataParallelSize = z.number().int().min(1).max(64).default(1);

/**
 * Where a backend publishes its KV cache events (vLLM --kv-events-config): the router then
 * knows what the server's cache holds instead of guessing from what it sent there.
 */
export const kvEventsEndpoint = z
  .object({
    /** The PUB socket: tcp://HOST:PORT of a publisher that binds (vLLM with tcp://*:PORT), or ipc:///path. */
    endpoint: zmqEndpoint,
    /** Bind `endpoint` here instead, for a publisher that connects (vLLM given tcp://ROUTER_HOST:PORT). */
    bind: z.boolean().default(false),
    /** vLLM's replay_endpoint, to catch up on start, after a gap and after a restart. */
    replayEndpoint: zmqEndpoint.optional(),
    /** vLLM's `topic` (first frame of every message), if it set one. */
    topic: z.string().default(''),
    dataParallelSize,
  })
  .strict()
  .refine((c) => c.dataParallelSize === 1 || (c.endpoint.startsWith('tcp://') && (c.replayEndpoint ?? 'tcp://').startsWith('tcp://')), {
    message: 'dataParallelSize above 1 needs tcp:// endpoints: vLLM publishes rank r on the port plus r, and refuses ipc:// with data parallelism',
    path: ['dataParallelSize'],
  });

/** KV events of discovered servers: ports on each server's address. */
export const kvEventsPorts = z
  .object({
    port: z.number().int().min(1).max(65535),
    replayPort: z.number().int().min(1).max(65535).optional(),
    topic: z.string().default(''),
    dataParallelSize,
  })
  .strict();

export type KvEventsEndpointConfig = z.infer<typeof kvEventsEndpoint>;
export type KvEventsPortsConfig = z.infer<typeof kvEventsPorts>;

/** A discovered server's KV event endpoints: the group's ports on its address. */
export function kvEventsAt(hostLiteral: string, ports: KvEventsPortsConfig | undefined): KvEventsEndpointConfig | undefined {
  if (!ports) return undefined;
  return {
    endpoint: `tcp://${hostLiteral}:${ports.port}`,
    bind: false,
    ...(ports.replayPort ? { replayEndpoint: `tcp://${hostLiteral}:${ports.replayPort}` } : {}),
    topic: ports.topic,
    dataParallelSize: ports.dataParallelSize,
  };
}
