import { z } from 'zod';

/** `host:port` of another router replica's gRPC server (an IPv6 host in brackets). */
const peerAddress = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'must be host:port (an IPv6 address in brackets)')
  .refine((a) => Number(a.slice(a.lastIndexOf(':') + 1)) <= 65535, 'port must be at most 65535');

/** Other replicas of this router behind the same Envoy (high availability). */
export const peersSchema = z
  .object({
    /**
     * The other router replicas' gRPC addresses: each is told what this one routes and when it
     * ends, and tells this one back, so replicas count and learn each other's requests. The
     * same list may be given to every replica: one naming itself ignores its own stream.
     */
    addresses: z.array(peerAddress).max(64).default([]),
  })
  .strict()
  .default({ addresses: [] });
