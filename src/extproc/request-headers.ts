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
  /** Flow control's priority and tenant headers (config `flowControl`), if sent. */
  priority?: string;
  tenant?: string;
  /** The declared body size, when Envoy sends the headers (the large-body filter does). */
  contentLength?: number;
}

/** The configured names of the headers the router reads beside the fixed ones. */
export interface HeaderNames {
  session?: string;
  priority?: string;
  tenant?: string;
}

/** From a request headers message (an Envoy that sends them: a mesh gateway). */
export function readHeaders(map: HeaderMap | undefined, names: HeaderNames = {}): RequestHeaders {
  const out: RequestHeaders = { method: 'GET', path: '/', contentType: undefined, contentEncoding: undefined, session: undefined };
  for (const h of map?.headers ?? []) {
    const value = h.rawValue.length > 0 ? h.rawValue.toString('utf8') : h.value;
    if (h.key === names.session) out.session = value;
    if (h.key === names.priority) out.priority = value;
    if (h.key === names.tenant) out.tenant = value;
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
export function headersFromAttributes(attributes: ProcessingRequest['attributes'], names: HeaderNames = {}): RequestHeaders {
  // Keyed by the ext_proc filter's name in Envoy's chain; whatever it is called, read them all.
  const values: Record<string, unknown> = Object.assign({}, ...Object.values(attributes));
  const text = (key: string) => (typeof values[key] === 'string' ? (values[key] as string) : undefined);
  return {
    method: text(REQUEST_ATTRIBUTES.method) ?? 'POST',
    path: text(REQUEST_ATTRIBUTES.path) ?? '/',
    contentType: text(REQUEST_ATTRIBUTES.contentType),
    contentEncoding: text(REQUEST_ATTRIBUTES.contentEncoding),
    session: names.session ? text(headerAttribute(names.session)) : undefined,
    ...optional('priority', names.priority ? text(headerAttribute(names.priority)) : undefined),
    ...optional('tenant', names.tenant ? text(headerAttribute(names.tenant)) : undefined),
  };
}

const optional = <K extends string>(key: K, value: string | undefined) => (value === undefined ? {} : ({ [key]: value } as Record<K, string>));
