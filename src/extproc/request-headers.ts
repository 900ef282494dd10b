import { REQUEST_ATTRIBUTES, headerAttribute } from '../contract/envoy.js';
import type { HeaderMap } from '../gen/envoy/config/core/v3/base.js';
import type { ProcessingRequest } from '../gen/envoy/service/ext_proc/v3/external_processor.js';

/** The few request headers the router reads. */
export interface RequestHeaders {
  method: string;
  path: string;
  contentType: string | undefined;
  contentEncoding: string | undefined;
  /** The configured session header's value, if sent. */
  session: string | undefined;
  /** The declared body size, when Envoy sends the headers (the large-body filter does). */
  contentLength?: number;
}

/** From a request headers message (an Envoy that sends them: a mesh gateway). */
export function readHeaders(map: HeaderMap | undefined, sessionHeader?: string): RequestHeaders {
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
      case 'content-length':
        out.contentLength = Number(value);
        break;
    }
  }
  return out;
}

/** From the request_attributes of the first message, when Envoy skips the headers message (the repo's bootstrap). */
export function headersFromAttributes(attributes: ProcessingRequest['attributes'], sessionHeader?: string): RequestHeaders {
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
