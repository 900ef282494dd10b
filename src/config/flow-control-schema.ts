/** Flow control under saturation: the config's part of it, validated with zod. */
import { z } from 'zod';

const headerName = z
  .string()
  .regex(/^[a-z0-9-]+$/, 'must be a lower-case HTTP header name')
  .refine((name) => !name.startsWith('x-envoy-') && !name.startsWith('x-vllm-router-'), 'must not be a header Envoy or the router sets');

/** Priorities a config or a request may give; a request's header is clamped to them. */
export const PRIORITY_MIN = -1000;
export const PRIORITY_MAX = 1000;

const DEFAULTS = { enabled: false, priorityHeader: 'x-request-priority', defaultPriority: 0, tenantHeader: 'x-tenant-id', maxQueued: 1024, maxWaitMs: 30_000 };

/**
 * When every server of a model is saturated (all its slots taken and a request already waiting
 * there, as measured), the router holds new requests of that model itself, instead of letting
 * them queue first come first served inside vLLM: in priority bands, fair across tenants within
 * a band, released as servers free up, shed with 429 beyond the bounds.
 */
export const flowControlSchema = z
  .object({
    enabled: z.boolean().default(DEFAULTS.enabled),
    /**
     * An integer; higher goes first. Requests without it get defaultPriority. Clients can set
     * it: let a gateway that knows who they are set or strip it.
     */
    priorityHeader: headerName.default(DEFAULTS.priorityHeader),
    defaultPriority: z.number().int().min(PRIORITY_MIN).max(PRIORITY_MAX).default(DEFAULTS.defaultPriority),
    /** Who a request is from, for fairness within a band; without it, the body's `user` field, else one shared tenant. */
    tenantHeader: headerName.default(DEFAULTS.tenantHeader),
    /** Most requests held at once; past it the lowest band is shed first. */
    maxQueued: z.number().int().min(1).max(1_000_000).default(DEFAULTS.maxQueued),
    /**
     * Longest a request is held before it is shed (429). Envoy must allow the router to ask
     * for that long: its ext_proc `max_message_timeout` (60 s in the shipped bootstraps).
     */
    maxWaitMs: z.number().int().min(100).max(60_000).default(DEFAULTS.maxWaitMs),
  })
  .strict()
  .refine((c) => c.priorityHeader !== c.tenantHeader, { message: 'priorityHeader and tenantHeader must differ', path: ['tenantHeader'] })
  .default(DEFAULTS);

export type FlowControlConfig = z.infer<typeof flowControlSchema>;
