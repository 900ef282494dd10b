import { z } from 'zod';
import { flowControlSchema } from './flow-control-schema.js';
import { peersSchema } from './peers-schema.js';
import { DEFAULT_PUBLIC_PATHS } from '../contract/public-api.js';
import { kvEventsEndpoint, kvEventsPorts } from './kv-events-schema.js';

/** Where one of our servers listens. Loopback unless the operator says otherwise. */
const listenAddress = (defaultPort: number) =>
  z
    .object({
      host: z.string().min(1).default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(defaultPort),
    })
    .strict()
    .default({ host: '127.0.0.1', port: defaultPort });

const parseUrl = (value: string): URL | undefined => (URL.canParse(value) ? new URL(value) : undefined);

const backendUrl = z
  .string()
  .refine((value) => parseUrl(value) !== undefined, 'must be a URL such as http://10.0.0.5:8000')
  .refine((value) => /^https?:\/\//.test(value), 'must start with http:// or https://')
  .refine((value) => {
    const url = parseUrl(value);
    return !url || (url.pathname === '/' && url.search === '' && url.hash === '');
  }, 'must be a bare origin such as http://10.0.0.5:8000 (no path, query or fragment)');

const modelName = z.string().min(1).max(512);

/** A setting that older versions took and the router now learns: refused with a reason, not as unknown. */
const learnedNow = z
  .unknown()
  .refine((value) => value === undefined, 'no longer a setting: the router learns what a queued or running request costs from each backend\'s metrics; remove it')
  .optional();

const backend = z
  .object({
    /** Stable identifier used in metrics and logs; defaults to host:port. */
    name: z.string().min(1).max(128).regex(/^[A-Za-z0-9._:-]+$/, 'may only contain letters, digits and . _ : -').optional(),
    url: backendUrl,
    /** Served model names. When absent they are read from the backend's /v1/models. */
    models: z.array(modelName).min(1).optional(),
    /**
     * Concurrent sequences the server runs before it queues (vLLM --max-num-seqs). Optional:
     * without it the router learns it from the server's metrics.
     */
    capacity: z.number().int().positive().optional(),
    kvEvents: kvEventsEndpoint.optional(),
  })
  .strict();

/** One DNS name resolving to many model servers (a headless Service), re-resolved periodically. */
const dnsGroup = z
  .object({
    name: z.string().min(1).max(253).regex(/^[A-Za-z0-9.-]+$/, 'must be a DNS name'),
    port: z.number().int().min(1).max(65535),
    scheme: z.enum(['http', 'https']).default('http'),
    /** Served model names; when absent each server's /v1/models says. */
    models: z.array(modelName).min(1).optional(),
    capacity: z.number().int().positive().optional(),
    kvEvents: kvEventsPorts.optional(),
    refreshMs: z.number().int().min(100).max(3_600_000).default(5_000),
  })
  .strict();

/** Ready pods selected by label in a namespace, followed through the Kubernetes API (list + watch). */
const kubernetesGroup = z
  .object({
    namespace: z.string().min(1).max(63).regex(/^[a-z0-9-]+$/, 'must be a namespace name'),
    labelSelector: z.string().min(1),
    port: z.number().int().min(1).max(65535),
    scheme: z.enum(['http', 'https']).default('http'),
    /** Pod label holding the served model name; without it (or `models`) /v1/models says. */
    modelLabel: z.string().min(1).optional(),
    models: z.array(modelName).min(1).optional(),
    capacity: z.number().int().positive().optional(),
    kvEvents: kvEventsPorts.optional(),
    /** API server URL; default: in-cluster service account, else ~/.kube/config. */
    apiServer: z.string().url().optional(),
  })
  .strict();

const discovery = z
  .object({ dns: z.array(dnsGroup).default([]), kubernetes: z.array(kubernetesGroup).default([]) })
  .strict()
  .default({ dns: [], kubernetes: [] });

const scraping = z
  .object({
    /** How often each backend's /metrics is read. */
    intervalMs: z.number().int().min(20).max(60_000).default(200),
    timeoutMs: z.number().int().min(10).max(60_000).default(1_000),
    /** After this long without a successful scrape, the backend's metrics are ignored. */
    staleAfterMs: z.number().int().min(50).default(2_000),
    /**
     * Consecutive failed /health probes before a backend leaves rotation. Requests still in
     * flight on it then end with 503 backend_unresponsive: with the defaults, within about
     * 3 s of its last answer (unhealthyAfterFailures x timeoutMs).
     */
    unhealthyAfterFailures: z.number().int().min(1).max(100).default(3),
    /**
     * A /health probe unanswered this long (or one that failed) makes a backend suspect: new
     * requests go to the others while any is not suspect. Its next good answer clears it. A
     * backend whose answers have lately taken longer gets twice its slowest, up to timeoutMs.
     */
    suspectAfterMs: z.number().int().min(10).max(60_000).default(500),
    /** How often /v1/models is re-read for backends whose models are not configured. */
    modelsRefreshMs: z.number().int().min(100).default(10_000),
  })
  .strict()
  .default({ intervalMs: 200, timeoutMs: 1_000, staleAfterMs: 2_000, unhealthyAfterFailures: 3, suspectAfterMs: 500, modelsRefreshMs: 10_000 });

export const SCORER_NAMES = [
  'first-token-cost',
  'prefix-match',
  'least-load',
  'queue',
  'running',
  'kv-cache',
  'inflight',
  'session-affinity',
  'lora-affinity',
] as const;

const scheduler = z
  .object({
    /** Next-best backends named after the primary, for Envoy's retries. */
    fallbacks: z.number().int().min(0).max(16).default(2),
    /** Answer 429 when every backend of the model has this many requests waiting (0: never). */
    maxWaitingPerBackend: z.number().int().min(0).default(0),
    /** Scorers and their weights; each score is clamped to [0, 1] before weighting. */
    scorers: z
      .array(z.object({ name: z.enum(SCORER_NAMES), weight: z.number().min(0).max(1000).default(1) }).strict())
      .min(1)
      .default([{ name: 'first-token-cost', weight: 1 }])
      .refine((list) => new Set(list.map((s) => s.name)).size === list.length, 'lists a scorer twice'),
    /** max-score: best weighted score, random among ties. random: ignore scores (a baseline). */
    picker: z.enum(['max-score', 'random']).default('max-score'),
    /** How prompts are cut into blocks for cache-affinity estimates. */
    prefix: z
      .object({
        /** Bytes of prompt text (as the client's JSON spells it) per hashed block; 64 is about vLLM's 16-token block. */
        blockBytes: z.number().int().min(16).max(4096).multipleOf(8).default(64),
        /** Bytes per token assumed until a backend's vllm:prompt_tokens_total teaches the real ratio. */
        bytesPerToken: z.number().min(1).max(16).default(4),
        blockTokens: z.number().int().min(1).max(1024).default(16),
        /** Cache size assumed for a backend until its vllm:cache_config_info is scraped. */
        defaultCapacityTokens: z.number().int().min(1024).default(262_144),
      })
      .strict()
      .default({ blockBytes: 64, bytesPerToken: 4, blockTokens: 16, defaultCapacityTokens: 262_144 }),
    /**
     * first-token-cost: every other price (a queued request, a running one, a prefilled
     * token) is learned from each backend's metrics, in seconds.
     */
    cost: z
      .object({
        queuedRequestTokens: learnedNow,
        runningRequestTokens: learnedNow,
        evictionWeight: z.number().min(0).max(10).default(2),
        /** A second waiting for a slot on a full backend: its own, and what it passes on to later arrivals. */
        queueWaitWeight: z.number().min(1).max(100).default(4),
        /** A second of delay added to requests already streaming, against a second of a new request's wait. */
        streamingDelayWeight: z.number().min(0).max(10).default(0.25),
      })
      .strict()
      .default({ evictionWeight: 2, queueWaitWeight: 4, streamingDelayWeight: 0.25 }),
    /** least-load: (running + waitingWeight*waiting) / capacity + kvCacheWeight * kv use. */
    load: z
      .object({
        waitingWeight: z.number().min(0).max(100).default(1),
        kvCacheWeight: z.number().min(0).max(100).default(0.5),
      })
      .strict()
      .default({ waitingWeight: 1, kvCacheWeight: 0.5 }),
    /** session-affinity: where the session key comes from. */
    session: z
      .object({
        header: z.string().regex(/^[a-z0-9-]+$/, 'must be a lower-case header name').optional(),
        useUserField: z.boolean().default(true),
      })
      .strict()
      .default({ useUserField: true }),
  })
  .strict()
  .default({
    fallbacks: 2,
    maxWaitingPerBackend: 0,
    scorers: [{ name: 'first-token-cost', weight: 1 }],
    picker: 'max-score',
    prefix: { blockBytes: 64, bytesPerToken: 4, blockTokens: 16, defaultCapacityTokens: 262_144 },
    cost: { evictionWeight: 2, queueWaitWeight: 4, streamingDelayWeight: 0.25 },
    load: { waitingWeight: 1, kvCacheWeight: 0.5 },
    session: { useUserField: true },
  });

const upstream = z
  .object({
    connectTimeoutMs: z.number().int().min(10).max(60_000).default(1_000),
    /** Retries on another backend of the same model, before any response byte is sent. */
    retries: z.number().int().min(0).max(10).default(2),
    /** Envoy's active health check of each backend's /health. */
    healthCheckIntervalMs: z.number().int().min(100).max(300_000).default(2_000),
    healthCheckTimeoutMs: z.number().int().min(50).max(60_000).default(1_000),
    /** Consecutive connect failures or 502/503/504 before Envoy ejects a backend for a while. */
    ejectAfterGatewayFailures: z.number().int().min(1).max(100).default(3),
    ejectionTimeMs: z.number().int().min(100).max(3_600_000).default(5_000),
    /** Envoy's own balancing inside a model's cluster when the router names no backend. */
    fallbackPolicy: z.enum(['least_request', 'round_robin']).default('least_request'),
    /**
     * While the router does not answer, Envoy parses bodies up to this size itself
     * (json_to_metadata) so that they still reach a server of their model; larger ones get
     * 503 then. The parse costs Envoy about 1 ms per 100 KiB; it is skipped whenever the
     * router has answered.
     */
    failOpenMaxBodyBytes: z.number().int().min(0).max(32 * 1024 * 1024).default(1_048_576),
    /**
     * Most bytes of bodies over failOpenMaxBodyBytes that Envoy may hold at once, by their
     * content-length; past it, such a request gets 503 before Envoy buffers its body. Envoy
     * holds about twice a body's size while it is routed: the default (640 MiB) suits the
     * bootstrap's 2 GiB heap ceiling. At least one body of the largest size (32 MiB).
     */
    largeBodyBudgetBytes: z.number().int().min(32 * 1024 * 1024).default(640 * 1024 * 1024),
  })
  .strict()
  .default({
    connectTimeoutMs: 1_000,
    retries: 2,
    healthCheckIntervalMs: 2_000,
    healthCheckTimeoutMs: 1_000,
    ejectAfterGatewayFailures: 3,
    ejectionTimeMs: 5_000,
    fallbackPolicy: 'least_request',
    failOpenMaxBodyBytes: 1_048_576,
    largeBodyBudgetBytes: 640 * 1024 * 1024,
  });

/** What clients may reach on the backends. */
const api = z
  .object({
    /**
     * Request paths forwarded to backends (exact, query aside); any other path is answered 404.
     * Default: vLLM's public inference API.
     */
    paths: z
      .array(
        z
          .string()
          .regex(/^\/[A-Za-z0-9._~!$&'()+,;=:@%/-]*$/, 'must be a request path such as /v1/chat/completions (no query, no wildcard)')
          .max(256),
      )
      .min(1)
      // One regex alternation in Envoy's routes: 64 paths of 256 characters stay within the
      // bootstrap's RE2 program size limit (re2.max_program_size.error_level).
      .max(64)
      .default([...DEFAULT_PUBLIC_PATHS]),
  })
  .strict()
  .default({ paths: [...DEFAULT_PUBLIC_PATHS] });

export const routerConfigSchema = z
  .object({
    /** gRPC server for Envoy: ext_proc and ADS (xDS) on one port. */
    grpc: listenAddress(18000),
    /** Admin HTTP server: /metrics (Prometheus), /health, /stats. */
    admin: listenAddress(9190),
    backends: z.array(backend).default([]),
    /** Backends found at run time, beside those listed in `backends`. */
    discovery,
    scraping,
    scheduler,
    /** How Envoy treats the backends: served to it over xDS with each model's cluster. */
    upstream,
    api,
    /** Served model name -> its Hugging Face model directory (tokenizer.json, chat template): prompts matched on token ids. */
    tokenizers: z.record(modelName, z.string().min(1)).default({}),
    flowControl: flowControlSchema,
    peers: peersSchema,
  })
  .strict()
  .superRefine((config, ctx) => {
    const seen = new Map<string, number>();
    config.backends.forEach((b, index) => {
      const key = b.name ?? parseUrl(b.url)?.host ?? b.url;
      const first = seen.get(key);
      if (first !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['backends', index, b.name ? 'name' : 'url'],
          message: `duplicates backends[${first}] (${key}); each backend must be listed once`,
        });
      }
      seen.set(key, index);
    });
  });

export type RouterConfig = z.infer<typeof routerConfigSchema>;
export type BackendConfig = RouterConfig['backends'][number];
export type DnsGroupConfig = RouterConfig['discovery']['dns'][number];
export type KubernetesGroupConfig = RouterConfig['discovery']['kubernetes'][number];
