import type { DecisionLog } from '../admin/decision-log.js';
import type { RouterMetrics } from '../admin/metrics.js';
import type { RouterConfig } from '../config/schema.js';
import { apiError, type HttpError } from '../contract/errors.js';
import type { Backend, FleetView } from '../fleet/backend.js';
import type { Scheduler } from '../scheduling/scheduler.js';
import { PRIORITY_MAX, PRIORITY_MIN, type FlowControlConfig } from '../config/flow-control-schema.js';
import type { FlowController, FlowRequest } from '../flow-control/flow-controller.js';
import type { PeerSync } from '../peers/peer-sync.js';
import type { Rejection } from '../scheduling/types.js';
import { promptTokens } from '../tokenize/prompt-tokens.js';
import type { TokenizerSet } from '../tokenize/tokenizer-set.js';
import { parseRequestBody } from './parse-request.js';
import type { RequestHeaders } from './request-headers.js';

export interface DecisionDeps {
  fleet: FleetView;
  /** Read per request: a config reload may replace the scheduler. */
  scheduler: () => Scheduler;
  config: () => RouterConfig;
  metrics: RouterMetrics;
  /** Where the latest decisions and their reasons are kept for /stats and the dashboard. */
  decisionLog?: DecisionLog | undefined;
  /** Read per request: the tokenizers the config names, so prompts are matched on the ids vLLM computes. */
  tokenizers?: (() => TokenizerSet) | undefined;
  /** Holds requests while every server of their model is saturated (config `flowControl`). */
  flow?: FlowController | undefined;
  /** The other router replicas, told what this one routes (config `peers`). */
  peers?: Pick<PeerSync, 'routed'> | undefined;
}

/** What to do with one request, whatever protocol asked. */
export type Outcome =
  | { kind: 'error'; error: HttpError; headers?: Record<string, string> }
  | {
      kind: 'held';
      /** How long it may be held: Envoy is asked to wait that long for the answer. */
      maxWaitMs: number;
      /** Waits for room, then calls `done` with the decision (synchronously); returns a cancel for a client that left. */
      wait(done: (outcome: Decided) => void): () => void;
    }
  | {
      kind: 'route';
      model: string;
      primary: Backend;
      /** Bytes of its prompt text, where the prompt was not tokenized (else 0): counted as it ends. */
      promptBytes: number;
      /** `primary,fallback1,...` as Envoy's override_host reads it. */
      destination: string;
      /** The body is JSON sent under a form or text content type: forward it as application/json. */
      rewriteContentType: boolean;
      /** Runs when the request no longer occupies its backend (flow control and peers count it until then). */
      ended?: () => void;
    };

/** An outcome that answers the request now. */
export type Decided = Exclude<Outcome, { kind: 'held' }>;

/** Whether a path is in the config's `api.paths`, with the list's set rebuilt only when the config changes. */
export function publicPathCheck(config: () => RouterConfig): (path: string) => boolean {
  let cached: { config: RouterConfig; paths: ReadonlySet<string> } | undefined;
  return (path) => {
    const current = config();
    if (cached?.config !== current) cached = { config: current, paths: new Set(current.api.paths) };
    return cached.paths.has(path);
  };
}

/** What to run when a routed request ends: flow control's and the peers' accounting, whichever are on. */
function endedBy(...ends: Array<(() => void) | undefined>): { ended?: () => void } {
  const on = ends.filter((e) => e !== undefined);
  if (on.length === 0) return {};
  if (on.length === 1) return { ended: on[0]! };
  return { ended: () => on.forEach((e) => e()) };
}

/** Endpoints whose body may omit `model` (vLLM falls back to its one served model). */
const MODEL_OPTIONAL = new Set(['/tokenize', '/detokenize']);

/** How a client hears each reason the scheduler gives for refusing a request. */
function rejectionError(r: Rejection): HttpError {
  switch (r.code) {
    case 'model_not_found':
      return apiError('model_not_found', r.model);
    case 'no_healthy_backend':
      return apiError('no_healthy_backend', r.model);
    case 'no_eligible_endpoint':
      return apiError('no_eligible_endpoint', r.model);
    case 'server_overloaded':
      return apiError('server_overloaded', r.maxWaiting);
  }
}

/**
 * The routing decision for one request with its whole body: check that its path is public,
 * read the body, find its session, let the scheduler pick, and account for the pick
 * (in-flight counts, metrics, the decision log). `allowed` is a gateway's subset hint, if it
 * sent one.
 */
export function createDecider(deps: DecisionDeps) {
  const { fleet, metrics } = deps;

  // Only the public API reaches a backend: a body naming a model is no pass to the rest.
  const isPublicPath = publicPathCheck(deps.config);

  const refuse = (error: HttpError, headers?: Record<string, string>): Decided => {
    metrics.rejections.inc({ code: error.code, status: String(error.status) });
    return headers ? { kind: 'error', error, headers } : { kind: 'error', error };
  };

  return function decide(headers: RequestHeaders, body: Uint8Array, allowed: ReadonlySet<string> | undefined): Outcome {
    const started = process.hrtime.bigint();
    if (!isPublicPath(headers.path)) return refuse(apiError('not_found', 'not-public'));
    const singleModel = MODEL_OPTIONAL.has(headers.path) ? fleet.routableModels() : [];
    const parsed = parseRequestBody(body, {
      contentType: headers.contentType,
      contentEncoding: headers.contentEncoding,
      defaultModel: singleModel.length === 1 ? singleModel[0] : undefined,
    });
    if (!parsed.ok) return refuse(parsed.error);
    const { request } = parsed;
    const session = deps.config().scheduler.session;
    const sessionKey = headers.session ?? (session.useUserField ? request.user : undefined);
    if (sessionKey !== undefined) request.sessionKey = sessionKey;
    if (allowed) request.allowedEndpoints = allowed;
    const candidates = fleet.servingModel(request.model);
    // An adapter (its /v1/models card names a parent) keeps its own KV blocks, and reads text with its base's tokenizer.
    const parent = candidates[0]?.cards.find((c) => c.id === request.model)?.parent ?? null;
    if (parent !== null) request.adapter = request.model;
    const text = request.prompt.kind === 'text' ? request.prompt.bytes : undefined;
    const tokenizers = text ? deps.tokenizers?.() : undefined;
    const tokenizer = tokenizers?.forModel(request.model) ?? (parent !== null ? tokenizers?.forModel(parent) : undefined);
    if (text && tokenizer) {
      // Token ids pay off against what servers report; with no server reporting, the text is matched as it is.
      const tokens = candidates.some((b) => b.cacheEvents) ? promptTokens(tokenizer, headers.path, body) : ({ ok: false, why: 'no-events' } as const);
      if (tokens.ok) request.prompt = { kind: 'tokenizing', reader: tokens.reader, bytes: text };
      metrics.promptTokenizations.inc({ model: request.model, outcome: tokens.ok ? 'tokenized' : tokens.why.split(':')[0]! });
    }
    const flow = deps.flow;
    const flowRequest = flow ? flowRequestOf(request, headers, deps.config().flowControl) : undefined;
    /** `since`: when deciding began (a held request's decision is timed from its release). */
    const routeNow = (since = started): Decided => {
      const decision = deps.scheduler().schedule(request, candidates);
      if (decision.kind === 'reject') return refuse(rejectionError(decision));
      const primary = decision.primary as Backend;
      fleet.dispatch(primary, decision.why.predictedTtftS, Math.max(0, decision.why.promptTokens - decision.why.cachedTokens));
      metrics.decisions.inc({ model: request.model, backend: primary.id });
      deps.decisionLog?.add({ at: Date.now(), model: request.model, backend: primary.id, fallbacks: decision.fallbacks.map((b) => b.id), ...decision.why });
      metrics.decisionSeconds.observe(Number(process.hrtime.bigint() - since) / 1e9);
      return {
        kind: 'route',
        model: request.model,
        primary,
        promptBytes: decision.routed.textBytes ?? 0,
        destination: [primary, ...decision.fallbacks].map((b) => b.endpoint).join(','),
        rewriteContentType: parsed.rewriteContentType,
        ...endedBy(flow && flowRequest ? flow.started(flowRequest) : undefined, deps.peers?.routed(primary, decision.routed)),
      };
    };
    if (!flow || !flowRequest || !flow.mustWait(flowRequest, candidates)) return routeNow();
    return {
      kind: 'held',
      maxWaitMs: deps.config().flowControl.maxWaitMs,
      wait: (done) =>
        flow.hold(flowRequest, (end) => {
          if (end.kind === 'release') done(routeNow(process.hrtime.bigint()));
          else if (end.reason !== 'client-gone') done(refuse(apiError('request_shed', request.model, end.reason), { 'retry-after': '1' }));
        }),
    };
  };
}

/** Its priority band and tenant; the priority within the range the config may set, so a header is no way past every band an operator uses. */
function flowRequestOf(request: { model: string; user?: string | undefined }, headers: RequestHeaders, settings: FlowControlConfig): FlowRequest {
  const sent = Number.parseInt(headers.priority ?? '', 10);
  const priority = Number.isSafeInteger(sent) ? Math.max(PRIORITY_MIN, Math.min(PRIORITY_MAX, sent)) : settings.defaultPriority;
  return { model: request.model, priority, tenant: headers.tenant ?? request.user ?? '' };
}

export type Decide = ReturnType<typeof createDecider>;
