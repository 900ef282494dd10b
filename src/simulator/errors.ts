/**
 * Error bodies as vLLM's OpenAI server sends them:
 *   handler errors      {"error": {"message", "type": "BadRequestError" | "NotFoundError", "param", "code"}}
 *   request validation  same envelope, type "Bad Request" (FastAPI's RequestValidationError handler)
 *   unknown route       {"detail": "Not Found"} (FastAPI default)
 */

export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: number };
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(typeof body === 'object' && body !== null && 'error' in body ? (body as ErrorBody).error.message : String(status));
  }
}

export function errorBody(message: string, type: string, code: number, param: string | null = null): ErrorBody {
  return { error: { message, type, param, code } };
}

/** vLLM's create_error_response: defaults to BadRequestError / 400. */
export function apiError(message: string, type = 'BadRequestError', code = 400, param: string | null = null): ApiError {
  return new ApiError(code, errorBody(message, type, code, param));
}

export function modelNotFound(model: string): ApiError {
  return apiError(`The model \`${model}\` does not exist.`, 'NotFoundError', 404, 'model');
}

export function promptTooLong(maxModelLen: number, promptTokens: number): ApiError {
  return apiError(
    `This model's maximum context length is ${maxModelLen} tokens. However, your request has ${promptTokens} ` +
      'input tokens. Please reduce the length of the input messages.',
  );
}

export function maxTokensTooLarge(maxTokens: number, maxModelLen: number, promptTokens: number): ApiError {
  return apiError(
    `'max_tokens' or 'max_completion_tokens' is too large: ${maxTokens}. This model's maximum context length is ` +
      `${maxModelLen} tokens and your request has ${promptTokens} input tokens ` +
      `(${maxTokens} > ${maxModelLen} - ${promptTokens}).`,
  );
}

/** One pydantic error, as FastAPI lists them. */
export interface ValidationIssue {
  type: string;
  loc: ReadonlyArray<string | number>;
  msg: string;
  ctx?: Record<string, string>;
}

function pyRepr(value: unknown): string {
  if (typeof value === 'string') {
    // Python's repr picks double quotes when that avoids escaping.
    const quote = value.includes("'") && !value.includes('"') ? '"' : "'";
    return `${quote}${value.replace(/\\/g, '\\\\').replaceAll(quote, `\\${quote}`)}${quote}`;
  }
  if (typeof value === 'number') return String(value);
  if (Array.isArray(value)) return `(${value.map(pyRepr).join(', ')}${value.length === 1 ? ',' : ''})`;
  if (value && typeof value === 'object') {
    return `{${Object.entries(value)
      .map(([k, v]) => `${pyRepr(k)}: ${pyRepr(v)}`)
      .join(', ')}}`;
  }
  return 'None';
}

/** A 400 like the one vLLM returns when the body does not validate. */
export function validationError(issues: readonly ValidationIssue[]): ApiError {
  let message = `${issues.length} validation error${issues.length === 1 ? '' : 's'}:\n`;
  for (const issue of issues) message += `  ${pyRepr(issue)}\n`;
  return apiError(message, 'Bad Request', 400);
}

export const NOT_FOUND_DETAIL = { detail: 'Not Found' } as const;
export const METHOD_NOT_ALLOWED_DETAIL = { detail: 'Method Not Allowed' } as const;
