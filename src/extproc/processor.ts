import type { BidiCall } from '../grpc/server.js';
import type { Backend } from '../fleet/backend.js';
import type { Fleet } from '../fleet/fleet.js';
import type { DecisionLog } from '../admin/decision-log.js';
import type { RouterMetrics } from '../admin/metrics.js';
import type { RouterConfig } from '../config/schema.js';
import type { HeaderMap, Metadata } from '../gen/envoy/config/core/v3/base.js';
import { ProcessingMode_BodySendMode } from '../gen/envoy/extensions/filters/http/ext_proc/v3/processing_mode.js';
import type { ProcessingRequest, ProcessingResponse } from '../gen/envoy/service/ext_proc/v3/external_processor.js';
import type { Logger } from '../log.js';
import { whenStreamEnds } from '../grpc/when-stream-ends.js';
import type { Scheduler } from '../scheduling/scheduler.js';
import {
  CLUSTER_HEADER,
  DESTINATION_HEADER,
  LB_METADATA_NAMESPACE,
  ROUTER_METADATA_NAMESPACE,
  SUBSET_HINT_NAMESPACE,
  clusterNameForModel,
} from '../xds/names.js';
import { NEEDS_BODY, answerLocally } from './local-endpoints.js';
import { errorBody, httpError } from './openai-error.js';
import { parseRequestBody } from './parse-request.js';
import {
  continueBody,
  continueResponseHeaders,
  continueTrailers,
  streamedBody,
  errorResponse,
  immediateResponse,
  routeResponse,
} from './responses.js';

export interface ProcessorDeps {
  fleet: Fleet;
  /** Read per request: a config reload may replace the scheduler. */
  scheduler: () => Scheduler;
  config: () => RouterConfig;
  metrics: RouterMetrics;
  logger: Logger;
  version: string;
  /** Where the latest decisions and their reasons are kept for /stats and the dashboard. */
  decisionLog?: DecisionLog;
}

/** Headers a client might send to choose its backend; never trusted, always removed. */
const ROUTING_HEADERS = [CLUSTER_HEADER, DESTINATION_HEADER, `${DESTINATION_HEADER}-served`];

/** Endpoints whose body may omit `model` (vLLM falls back to its one served model). */
const MODEL_OPTIONAL = new Set(['/tokenize', '/detokenize']);

interface RequestHeaders {
  method: string;
  path: string;
  contentType: string | undefined;
  contentEncoding: string | undefined;
  session: string | undefined;
}

function readHeaders(map: HeaderMap | undefined, sessionHeader?: string): RequestHeaders {
  const out: RequestHeaders = { method: 'GET', path: '/', contentType: undefined, contentEncoding: undefined, session: undefined };
  for (const h of map?.headers ?? []) {
    const value = h.rawValue.length > 0 ? h.rawValue.toString('utf8') : h.value;
    if (h.key === sessionHeader) out.session = value;
    switch (h.key) {
      case ':method':
        out.method = value;
        break;
      case ':path': {
        const q = value.indexOf('?');
        out.path = q === -1 ? value : value.slice(0, q);
        break;
      }
      case 'content-type':
        out.contentType = value;
        break;
      case 'content-encoding':
        out.contentEncoding = value;
        break;
    }
  }
  return out;
}

/**
 * What Envoy's request_attributes carry when it skips the request headers message (as the
 * repo's Envoy config does, saving a round trip per request): the attribute expressions below.
 */
export const REQUEST_ATTRIBUTES = {
  method: 'request.method',
  path: 'request.url_path',
  contentType: "request.headers['content-type']",
  contentEncoding: "request.headers['content-encoding']",
} as const;
export const headerAttribute = (name: string) => `request.headers['${name}']`;

function headersFromAttributes(attributes: ProcessingRequest['attributes'], sessionHeader?: string): RequestHeaders {
  // Keyed by the ext_proc filter's name in Envoy's chain; whatever it is called, read them all.
  const values: Record<string, unknown> = Object.assign({}, ...Object.values(attributes));
  const text = (key: string) => (typeof values[key] === 'string' ? (values[key] as string) : undefined);
  return {
    method: text(REQUEST_ATTRIBUTES.method) ?? 'POST',
    path: text(REQUEST_ATTRIBUTES.path) ?? '/',
    contentType: text(REQUEST_ATTRIBUTES.contentType),
    contentEncoding: text(REQUEST_ATTRIBUTES.contentEncoding),
    session: sessionHeader ? text(headerAttribute(sessionHeader)) : undefined,
  };
}

/**
 * Handles one ext_proc stream, i.e. one HTTP request through Envoy: the buffered body (after
 * the headers, when Envoy sends them), which is scanned once and scheduled; the reply names
 * the model and the chosen endpoint with its fallbacks.
 */
export function createProcessor(deps: ProcessorDeps) {
  const { fleet, metrics, logger } = deps;

  function decide(
    headers: RequestHeaders,
    body: Buffer,
    phase: 'requestHeaders' | 'requestBody',
    subset: ReadonlySet<string> | undefined,
  ): { response: ProcessingResponse; backend?: Backend } {
    const started = process.hrtime.bigint();
    const singleModel = MODEL_OPTIONAL.has(headers.path) ? fleet.routableModels() : [];
    const parsed = parseRequestBody(body, {
      contentType: headers.contentType,
      contentEncoding: headers.contentEncoding,
      defaultModel: singleModel.length === 1 ? singleModel[0] : undefined,
    });
    if (!parsed.ok) {
      metrics.rejections.inc({ code: parsed.error.code, status: String(parsed.error.status) });
      return { response: errorResponse(parsed.error) };
    }
    const { request } = parsed;
    const session = deps.config().scheduler.session;
    const sessionKey = headers.session ?? (session.useUserField ? request.user : undefined);
    if (sessionKey !== undefined) request.sessionKey = sessionKey;
    let candidates = fleet.servingModel(request.model);
    if (subset) {
      // The gateway narrowed the choice (endpoint-picker protocol): pick from its list or not at all.
      candidates = candidates.filter((b) => subset.has(b.endpoint));
      if (candidates.length === 0 && fleet.isKnownModel(request.model)) {
        metrics.rejections.inc({ code: 'no_eligible_endpoint', status: '503' });
        return { response: errorResponse(httpError(503, 'no_eligible_endpoint', `None of the endpoints the gateway allowed serves \`${request.model}\`.`)) };
      }
    }
    const decision = deps.scheduler().schedule(request, candidates);
    if (decision.kind === 'reject') {
      metrics.rejections.inc({ code: decision.code, status: String(decision.status) });
      return { response: errorResponse(httpError(decision.status, decision.code, decision.message, decision.status === 404 ? 'model' : null)) };
    }
    const primary = decision.primary as Backend;
    fleet.dispatch(primary);
    const destination = [primary, ...decision.fallbacks].map((b) => b.endpoint).join(',');
    const setHeaders: Record<string, string> = {
      [CLUSTER_HEADER]: clusterNameForModel(request.model),
      [DESTINATION_HEADER]: destination,
    };
    if (parsed.rewriteContentType) setHeaders['content-type'] = 'application/json';
    const response = routeResponse(phase, {
      setHeaders,
      removeHeaders: [],
      dynamicMetadata: {
        [LB_METADATA_NAMESPACE]: { [DESTINATION_HEADER]: destination },
        [ROUTER_METADATA_NAMESPACE]: { model: request.model, backend: primary.id, ...(parsed.rewriteContentType ? { 'content-type': 'application/json' } : {}) },
      },
    });
    metrics.decisions.inc({ model: request.model, backend: primary.id });
    deps.decisionLog?.add({
      at: Date.now(),
      model: request.model,
      backend: primary.id,
      fallbacks: decision.fallbacks.map((b) => b.id),
      ...decision.why,
    });
    metrics.decisionSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
    return { response, backend: primary };
  }

  return function process(call: BidiCall<ProcessingRequest, ProcessingResponse>): void {
    let headers: RequestHeaders | undefined;
    // Which body mode Envoy uses is read from the stream, not assumed.
    let streamed = false;
    let responseStreamed = false;
    let subset: ReadonlySet<string> | undefined;
    const chunks: Buffer[] = [];
    let decided = false;
    let routedTo: Backend | undefined;
    let released = false;
    let finished = false;

    /** The request no longer occupies its backend: its response ended, or the stream did. */
    const release = () => {
      if (routedTo && !released) fleet.release(routedTo);
      released = true;
    };
    const finish = () => {
      finished = true;
      release();
    };
    const reply = (response: ProcessingResponse) => {
      if (!finished) call.write(response);
    };

    /** The whole body is in: decide, and answer in the shape the body mode wants. */
    const route = (body: Buffer, bodyEnds: boolean) => {
      decided = true;
      const { response, backend } = decide(headers!, body, streamed ? 'requestHeaders' : 'requestBody', subset);
      routedTo = backend;
      reply(response);
      if (streamed && backend) reply(streamedBody('request', body, bodyEnds));
    };

    call.on('data', (message: ProcessingRequest) => {
      try {
        if (message.protocolConfig) {
          streamed = message.protocolConfig.requestBodyMode === ProcessingMode_BodySendMode.FULL_DUPLEX_STREAMED;
          responseStreamed = message.protocolConfig.responseBodyMode === ProcessingMode_BodySendMode.FULL_DUPLEX_STREAMED;
        }
        // No headers message (Envoy skips it): the first message's attributes stand in.
        if (!headers && message.request?.$case !== 'requestHeaders') headers = headersFromAttributes(message.attributes, deps.config().scheduler.session.header);
        if (message.metadataContext) subset = readSubset(message.metadataContext) ?? subset;
        const r = message.request;
        switch (r?.$case) {
          case 'requestHeaders': {
            headers = readHeaders(r.value.headers, deps.config().scheduler.session.header);
            if (r.value.endOfStream) {
              const local = answerLocally(headers.method, headers.path, fleet, deps.version) ?? NEEDS_BODY;
              reply(immediateResponse(local.status, local.body));
              return;
            }
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
        reply(immediateResponse(500, errorBody(httpError(500, 'router_error', 'The router failed to process this request.'))));
      }
    });
    whenStreamEnds(call, finish);
  };
}

/** `envoy.lb.subset_hint` -> `x-gateway-destination-endpoint-subset`: the endpoints a gateway allows. */
function readSubset(context: Metadata): ReadonlySet<string> | undefined {
  const hint = context.filterMetadata[SUBSET_HINT_NAMESPACE]?.[`${DESTINATION_HEADER}-subset`];
  if (!Array.isArray(hint)) return undefined;
  return new Set(hint.filter((e): e is string => typeof e === 'string'));
}
