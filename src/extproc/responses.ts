import { HeaderValueOption_HeaderAppendAction } from '../gen/envoy/config/core/v3/base.js';
import { ProcessingResponse } from '../gen/envoy/service/ext_proc/v3/external_processor.js';
import type { HttpError } from '../contract/errors.js';
import { errorBody } from '../contract/errors.js';

/** Builders for the ext_proc replies we send; Envoy reads header values from raw_value. */

export const setHeader = (key: string, value: string) => ({
  header: { key, value: '', rawValue: Buffer.from(value) },
  appendAction: HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
});

export const continueResponseHeaders = (): ProcessingResponse =>
  ProcessingResponse.fromPartial({ response: { $case: 'responseHeaders', value: { response: {} } } });

export interface RouteMutation {
  setHeaders: Record<string, string>;
  removeHeaders: readonly string[];
  dynamicMetadata: Record<string, Record<string, string>>;
}

/**
 * The routing answer. The header mutation (even an empty one) is what makes Envoy honour
 * clear_route_cache, so the route is chosen again with our headers in place.
 */
export function routeResponse(phase: 'requestHeaders' | 'requestBody', mutation: RouteMutation): ProcessingResponse {
  const response = {
    response: {
      headerMutation: {
        setHeaders: Object.entries(mutation.setHeaders).map(([k, v]) => setHeader(k, v)),
        removeHeaders: [...mutation.removeHeaders],
      },
      clearRouteCache: true,
    },
  };
  return ProcessingResponse.fromPartial({
    response: phase === 'requestBody' ? { $case: 'requestBody', value: response } : { $case: 'requestHeaders', value: response },
    dynamicMetadata: mutation.dynamicMetadata,
  });
}

/** Which way a body or trailers travel: the request to the model server, or its response. */
export type Direction = 'request' | 'response';

/**
 * FULL_DUPLEX_STREAMED mode: Envoy forwards only what the processor sends back, so each body
 * chunk returns as a streamed mutation (the request body whole, once the route is chosen).
 */
export function streamedBody(direction: Direction, body: Buffer, endOfStream: boolean): ProcessingResponse {
  const value = { response: { bodyMutation: { mutation: { $case: 'streamedResponse' as const, value: { body, endOfStream } } } } };
  return ProcessingResponse.fromPartial({
    response: direction === 'request' ? { $case: 'requestBody', value } : { $case: 'responseBody', value },
  });
}

/** BUFFERED or STREAMED mode: the body chunk goes on unchanged. */
export const continueBody = (direction: Direction): ProcessingResponse =>
  ProcessingResponse.fromPartial({
    response: direction === 'request' ? { $case: 'requestBody', value: { response: {} } } : { $case: 'responseBody', value: { response: {} } },
  });

export const continueTrailers = (direction: Direction): ProcessingResponse =>
  ProcessingResponse.fromPartial({
    response: direction === 'request' ? { $case: 'requestTrailers', value: {} } : { $case: 'responseTrailers', value: {} },
  });

/** A complete HTTP answer from the router itself. Envoy turns a missing status into 200. */
export function immediateResponse(status: number, body: string, contentType = 'application/json', extraHeaders: Record<string, string> = {}): ProcessingResponse {
  return ProcessingResponse.fromPartial({
    response: {
      $case: 'immediateResponse',
      value: {
        status: { code: status },
        headers: { setHeaders: Object.entries({ 'content-type': contentType, ...extraHeaders }).map(([k, v]) => setHeader(k, v)) },
        body: Buffer.from(body),
        details: 'vllm_router',
      },
    },
  });
}

export function errorResponse(error: HttpError, extraHeaders: Record<string, string> = {}): ProcessingResponse {
  return immediateResponse(error.status, errorBody(error), 'application/json', extraHeaders);
}

/** Asks Envoy to wait this long for the answer to the message it is sending (ext_proc's override_message_timeout). */
export const extendMessageTimeout = (ms: number): ProcessingResponse =>
  ProcessingResponse.fromPartial({ overrideMessageTimeout: { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 } });
