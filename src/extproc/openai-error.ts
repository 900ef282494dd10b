/** An error answered to the HTTP client in OpenAI's JSON shape. */
export interface HttpError {
  status: number;
  message: string;
  /** OpenAI error type, e.g. invalid_request_error. */
  type: string;
  param: string | null;
  code: string;
}

export function httpError(status: number, code: string, message: string, param: string | null = null): HttpError {
  const type =
    status === 401 ? 'authentication_error'
    : status === 404 && code !== 'model_not_found' ? 'not_found_error'
    : status === 429 ? 'rate_limit_error'
    : status >= 500 ? 'server_error'
    : 'invalid_request_error';
  return { status, message, type, param, code };
}

export function errorBody(error: HttpError): string {
  return JSON.stringify({ error: { message: error.message, type: error.type, param: error.param, code: error.code } });
}
