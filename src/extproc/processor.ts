import type { DecisionLog } from '../admin/decision-log.js';
import type { RouterMetrics } from '../admin/metrics.js';
import type { RouterConfig } from '../config/schema.js';
import {
  CLUSTER_HEADER,
  DESTINATION_HEADER,
  LB_METADATA_NAMESPACE,
  ROUTER_METADATA_NAMESPACE,
  LARGE_BODY_MESSAGE_TIMEOUT_MS,
  HELD_MESSAGE_TIMEOUT_MS,
  ROUTING_HEADERS,
  SUBSET_HINT_KEY,
  SUBSET_HINT_NAMESPACE,
  clusterNameForModel,
} from '../contract/envoy.js';
import { apiError } from '../contract/errors.js';
import { NEEDS_BODY, NOT_PUBLIC, answerLocally, localEndpoints } from '../contract/local-answers.js';
import { isRoutable, modelCards, type Backend, type FleetView } from '../fleet/backend.js';
import type { Metadata } from '../gen/envoy/config/core/v3/base.js';
import { ProcessingMode_BodySendMode } from '../gen/envoy/extensions/filters/http/ext_proc/v3/processing_mode.js';
import type { ProcessingRequest, ProcessingResponse } from '../gen/envoy/service/ext_proc/v3/external_processor.js';
import type { MessageStream } from '../grpc/stream.js';
import { whenStreamEnds } from '../grpc/when-stream-ends.js';
import type { FlowController } from '../flow-control/flow-controller.js';
import type { PeerSync } from '../peers/peer-sync.js';
import type { Scheduler } from '../scheduling/scheduler.js';
import type { Logger } from '../support/log.js';
import { createDecider, publicPathCheck, type Decided } from './decision.js';
import type { InflightRequests } from './inflight-requests.js';
import type { LargeBodyBudget } from './large-body-budget.js';
import type { TokenizerSet } from '../tokenize/tokenizer-set.js';
import { headersFromAttributes, readHeaders, type RequestHeaders } from './request-headers.js';
import {
  continueBody,
  continueResponseHeaders,
  continueTrailers,
  errorResponse,
  extendMessageTimeout,
  immediateResponse,
  routeResponse,
  streamedBody,
} from './responses.js';

export interface ProcessorDeps {
  fleet: FleetView;
  /** Read per request: a config reload may replace the scheduler. */
  scheduler: () => Scheduler;
  config: () => RouterConfig;
  metrics: RouterMetrics;
  logger: Logger;
  version: string;
  /** Where the latest decisions and their reasons are kept for /stats and the dashboard. */
  decisionLog?: DecisionLog;
  /** Where requests in flight are registered, so that those on a backend that stops answering can be ended. */
  inflight?: InflightRequests;
  /** What large bodies are admitted against, when Envoy sends their headers first. */
  largeBodies?: LargeBodyBudget;
  /** Read per request: the tokenizers the config names. */
  tokenizers?: () => TokenizerSet;
  /** Holds requests while every server of their model is saturated. */
  flow?: FlowController;
  /** The other router replicas, told what this one routes. */
  peers?: Pick<PeerSync, 'routed'>;
}

/** The headers the config names: the session's, and flow control's priority and tenant. */
const headerNames = (config: RouterConfig) => ({
  session: config.scheduler.session.header,
  ...(config.flowControl.enabled ? { priority: config.flowControl.priorityHeader, tenant: config.flowControl.tenantHeader } : {}),
});

const EXTEND_FOR_LARGE_BODY = extendMessageTimeout(LARGE_BODY_MESSAGE_TIMEOUT_MS);

/** A held request's answer may come this long after its wait limit (the shed itself). */
const HELD_MARGIN_MS = 1_000;

/** What a request in flight on a backend that stopped answering is ended with; SDKs retry it at once. */
const BACKEND_UNRESPONSIVE = errorResponse(apiError('backend_unresponsive'), { 'retry-after': '0' });

/** The decision as ext_proc says it: the pick in headers and in the metadata Envoy's routes and override_host read. */
function outcomeResponse(outcome: Decided, phase: 'requestHeaders' | 'requestBody'): ProcessingResponse {
  if (outcome.kind === 'error') return errorResponse(outcome.error, outcome.headers);
  const { model, primary, destination, rewriteContentType } = outcome;
  const setHeaders: Record<string, string> = { [CLUSTER_HEADER]: clusterNameForModel(model), [DESTINATION_HEADER]: destination };
  if (rewriteContentType) setHeaders['content-type'] = 'application/json';
  return routeResponse(phase, {
    setHeaders,
    removeHeaders: [],
    dynamicMetadata: {
      [LB_METADATA_NAMESPACE]: { [DESTINATION_HEADER]: destination },
      [ROUTER_METADATA_NAMESPACE]: { model, backend: primary.id, ...(rewriteContentType ? { 'content-type': 'application/json' } : {}) },
    },
  });
}

/**
 * Handles one ext_proc stream, i.e. one HTTP request through Envoy: the protocol's state
 * machine (which messages come in which body mode, and what each must be answered with). The
 * body, once whole, goes to the routing decision (decision.ts); the reply names the model and
 * the chosen endpoint with its fallbacks.
 */
export function createProcessor(deps: ProcessorDeps) {
  const { fleet, metrics, logger } = deps;
  const decide = createDecider(deps);
  const isPublicPath = publicPathCheck(deps.config);
  const answerWithoutBody = (headers: RequestHeaders) =>
    answerLocally(headers.method, headers.path, localEndpoints(modelCards(fleet.backends()), fleet.backends().filter(isRoutable).length, deps.version)) ??
    (isPublicPath(headers.path) ? NEEDS_BODY : NOT_PUBLIC);

  return function process(call: MessageStream<ProcessingRequest, ProcessingResponse>): void {
    let headers: RequestHeaders | undefined;
    // Which body mode Envoy uses is read from the stream, not assumed.
    let streamed = false;
    let responseStreamed = false;
    let subset: ReadonlySet<string> | undefined;
    const chunks: Buffer[] = [];
    let decided = false;
    let routedTo: Backend | undefined;
    let routedPromptBytes = 0;
    let routedEnded: (() => void) | undefined;
    let released = false;
    let finished = false;
    let untrack: (() => void) | undefined;
    let releaseBody: (() => void) | undefined;

    /** The request no longer occupies its backend: its response ended, or the stream did. */
    const release = () => {
      if (routedTo && !released) {
        fleet.release(routedTo, routedPromptBytes);
        // Its server has room again, perhaps for a request held for it.
        routedEnded?.();
      }
      released = true;
      untrack?.();
      releaseBody?.();
    };
    let cancelHold: (() => void) | undefined;
    const finish = () => {
      finished = true;
      cancelHold?.();
      release();
    };
    const reply = (response: ProcessingResponse) => {
      if (!finished) call.write(response);
    };

    /** A body over the fail-open bound is let in only within the budget for large bodies. */
    const admitBody = (h: RequestHeaders): boolean => {
      const upstream = deps.config().upstream;
      if (!deps.largeBodies || h.contentLength === undefined || !(h.contentLength > upstream.failOpenMaxBodyBytes)) return true;
      releaseBody = deps.largeBodies.admit(h.contentLength, upstream.largeBodyBudgetBytes);
      if (releaseBody) return true;
      const error = apiError('large_bodies_busy', Math.round(upstream.largeBodyBudgetBytes / 1048576));
      metrics.rejections.inc({ code: error.code, status: String(error.status) });
      reply(errorResponse(error, { 'retry-after': '1' }));
      finish();
      return false;
    };

    /** The whole body is in: decide, and answer in the shape the body mode wants. */
    const route = (body: Buffer, bodyEnds: boolean) => {
      decided = true;
      const outcome = decide(headers!, body, subset);
      if (outcome.kind !== 'held') return answer(outcome, body, bodyEnds);
      // Every server of its model is saturated: Envoy is asked to wait while it is held.
      reply(extendMessageTimeout(Math.min(outcome.maxWaitMs + HELD_MARGIN_MS, HELD_MESSAGE_TIMEOUT_MS)));
      cancelHold = outcome.wait((final) => {
        cancelHold = undefined;
        answer(final, body, bodyEnds);
      });
    };
    const answer = (outcome: Decided, body: Buffer, bodyEnds: boolean) => {
      if (outcome.kind === 'route') {
        routedTo = outcome.primary;
        routedPromptBytes = outcome.promptBytes;
        routedEnded = outcome.ended;
        untrack = deps.inflight?.track(routedTo.id, () => {
          // Envoy answers the client with this (or, once the response has begun, resets it).
          metrics.rejections.inc({ code: 'backend_unresponsive', status: '503' });
          reply(BACKEND_UNRESPONSIVE);
          finish();
        });
      }
      reply(outcomeResponse(outcome, streamed ? 'requestHeaders' : 'requestBody'));
      if (streamed && routedTo) reply(streamedBody('request', body, bodyEnds));
    };

    // A body over the fail-open bound whose size Envoy did not know when it chose the filter
    // (chunked) can take longer to arrive than the 1 s message timeout; the router, alive and
    // receiving it, asks for more time (a no-op on the large-body filter, already that long).
    call.on('incoming', (bytes) => {
      if (!streamed && !decided && bytes > deps.config().upstream.failOpenMaxBodyBytes) reply(EXTEND_FOR_LARGE_BODY);
    });
    call.on('data', (message: ProcessingRequest) => {
      try {
        if (message.protocolConfig) {
          streamed = message.protocolConfig.requestBodyMode === ProcessingMode_BodySendMode.FULL_DUPLEX_STREAMED;
          responseStreamed = message.protocolConfig.responseBodyMode === ProcessingMode_BodySendMode.FULL_DUPLEX_STREAMED;
        }
        // No headers message (Envoy skips it): the first message's attributes stand in.
        if (!headers && message.request?.$case !== 'requestHeaders') headers = headersFromAttributes(message.attributes, headerNames(deps.config()));
        if (message.metadataContext) subset = readSubset(message.metadataContext) ?? subset;
        const r = message.request;
        switch (r?.$case) {
          case 'requestHeaders': {
            headers = readHeaders(r.value.headers, headerNames(deps.config()));
            if (r.value.endOfStream) {
              const local = answerWithoutBody(headers);
              reply(immediateResponse(local.status, local.body));
              return;
            }
            if (!admitBody(headers)) return;
            // Streamed: the headers reply waits for the body, which decides the route.
            if (streamed) return;
            // Client copies of routing headers are dropped here too, for Envoys whose
            // filter chain does not strip them before ext_proc.
            reply(routeResponse('requestHeaders', { setHeaders: {}, removeHeaders: ROUTING_HEADERS, dynamicMetadata: {} }));
            return;
          }
          case 'requestBody': {
            if (decided) {
              // One request, one decision: a second end of stream (never sent by Envoy) changes nothing.
              if (!streamed) reply(continueBody('request'));
              return;
            }
            if (!r.value.endOfStream) {
              // Kept past this message, so copied out of the gRPC layer's reused buffer.
              chunks.push(Buffer.from(r.value.body));
              if (!streamed) reply(continueBody('request'));
              return;
            }
            const body = chunks.length === 0 ? r.value.body : Buffer.concat([...chunks, r.value.body]);
            chunks.length = 0;
            route(body, true);
            return;
          }
          case 'requestTrailers': {
            // Streamed mode may end the body with trailers instead of end_of_stream.
            if (streamed && !decided) route(Buffer.concat(chunks), false);
            reply(continueTrailers('request'));
            return;
          }
          case 'responseHeaders': {
            if (routedTo) {
              const status = r.value.headers?.headers.find((h) => h.key === ':status');
              const code = status ? Number(status.rawValue.length > 0 ? status.rawValue.toString() : status.value) : 0;
              metrics.upstreamResponses.inc({ backend: routedTo.id, class: `${Math.floor(code / 100)}xx` });
            }
            reply(continueResponseHeaders());
            return;
          }
          // Response bodies and trailers arrive only from Envoys configured to send them (the
          // mesh configs: there Envoy closes the stream once the request is processed, so the
          // end of the response is seen here or not at all).
          case 'responseBody': {
            if (responseStreamed) reply(streamedBody('response', r.value.body, r.value.endOfStream));
            else reply(continueBody('response'));
            if (r.value.endOfStream) release();
            return;
          }
          case 'responseTrailers': {
            reply(continueTrailers('response'));
            release();
            return;
          }
          default:
            logger.debug('ext_proc message without a request');
        }
      } catch (err) {
        logger.error('ext_proc handler failed', { error: err as Error });
        reply(errorResponse(apiError('router_error')));
      }
    });
    whenStreamEnds(call, finish);
  };
}

/** `envoy.lb.subset_hint` -> `x-gateway-destination-endpoint-subset`: the endpoints a gateway allows. */
function readSubset(context: Metadata): ReadonlySet<string> | undefined {
  const hint = context.filterMetadata[SUBSET_HINT_NAMESPACE]?.[SUBSET_HINT_KEY];
  if (!Array.isArray(hint)) return undefined;
  return new Set(hint.filter((e): e is string => typeof e === 'string'));
}
