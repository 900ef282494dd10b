/**
 * Validation of OpenAI-style request bodies, in the order and with the messages vLLM uses:
 * schema problems are "Bad Request" validation errors, semantic ones BadRequestError.
 */
import type { ChatTurn } from './chat-template.js';
import { apiError, validationError, type ValidationIssue } from './errors.js';
import { STAND_IN_ENCODER, type PromptEncoder } from './prompt-encoder.js';
import { isValidTokenId } from './tokenizer.js';

export interface StreamSettings {
  stream: boolean;
  includeUsage: boolean;
  continuousUsage: boolean;
}

export interface GenerationSettings extends StreamSettings {
  /** Requested model, undefined when omitted (the primary served model then answers). */
  model: string | undefined;
  maxTokens: number | null;
  ignoreEos: boolean;
  /** vLLM's request_id extra parameter. */
  requestId: string | undefined;
}

export interface ChatRequest extends GenerationSettings {
  turns: ChatTurn[];
}

export interface CompletionRequest extends GenerationSettings {
  /** One token-id list per prompt (a batch when more than one). */
  prompts: number[][];
}

type Body = Record<string, unknown>;

class Issues {
  readonly list: ValidationIssue[] = [];
  add(type: string, loc: ReadonlyArray<string | number>, msg: string): void {
    this.list.push({ type, loc: ['body', ...loc], msg });
  }
  throwIfAny(): void {
    if (this.list.length > 0) throw validationError(this.list);
  }
}

function asBody(value: unknown): Body {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw validationError([
      { type: 'model_attributes_type', loc: ['body'], msg: 'Input should be a valid dictionary or object to extract fields from' },
    ]);
  }
  return value as Body;
}

function optionalString(body: Body, key: string, issues: Issues): string | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') {
    issues.add('string_type', [key], 'Input should be a valid string');
    return undefined;
  }
  return v;
}

function optionalBool(body: Body, key: string, issues: Issues, loc: ReadonlyArray<string | number> = [key]): boolean | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') {
    issues.add('bool_type', loc, 'Input should be a valid boolean');
    return undefined;
  }
  return v;
}

function optionalInt(body: Body, key: string, issues: Issues): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
    issues.add('int_type', [key], 'Input should be a valid integer');
    return undefined;
  }
  return v;
}

function parseGenerationSettings(body: Body, issues: Issues): GenerationSettings {
  const model = optionalString(body, 'model', issues);
  const requestId = optionalString(body, 'request_id', issues);
  const maxTokens = optionalInt(body, 'max_tokens', issues);
  const maxCompletionTokens = optionalInt(body, 'max_completion_tokens', issues);
  const n = optionalInt(body, 'n', issues);
  const stream = optionalBool(body, 'stream', issues) ?? false;
  const ignoreEos = optionalBool(body, 'ignore_eos', issues) ?? false;
  let includeUsage = false;
  let continuousUsage = false;
  const options = body['stream_options'];
  if (options !== undefined && options !== null) {
    if (typeof options !== 'object' || Array.isArray(options)) {
      issues.add('model_type', ['stream_options'], 'Input should be a valid dictionary or instance of StreamOptions');
    } else {
      const o = options as Body;
      // vLLM's StreamOptions defaults include_usage to true once stream_options is present.
      includeUsage = optionalBool(o, 'include_usage', issues, ['stream_options', 'include_usage']) ?? true;
      continuousUsage =
        includeUsage && (optionalBool(o, 'continuous_usage_stats', issues, ['stream_options', 'continuous_usage_stats']) ?? false);
      // vLLM's check is on truthiness, so an empty stream_options object passes.
      if (!stream && Object.keys(o).length > 0) {
        issues.add('value_error', [], 'Value error, Stream options can only be defined when `stream=True`.');
      }
    }
  }
  issues.throwIfAny();
  if (n !== undefined && n !== 1) throw apiError('n > 1 is not supported by this server; send n = 1.', 'BadRequestError', 400, 'n');
  // As in vLLM: max_completion_tokens wins over the deprecated max_tokens.
  const limit = maxCompletionTokens ?? maxTokens ?? null;
  if (limit !== null && limit < 1) throw apiError(`max_tokens must be at least 1, got ${limit}.`);
  return { model, requestId, maxTokens: limit, stream, includeUsage, continuousUsage, ignoreEos };
}

function contentText(content: unknown, index: number, issues: Issues): string {
  if (content === undefined || content === null) return '';
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) {
    issues.add('string_type', ['messages', index, 'content'], 'Input should be a valid string');
    return '';
  }
  const texts: string[] = [];
  content.forEach((part: unknown, p) => {
    const loc = ['messages', index, 'content', p];
    if (typeof part === 'string') {
      texts.push(part);
      return;
    }
    if (typeof part !== 'object' || part === null) {
      issues.add('model_type', loc, 'Input should be a valid dictionary');
      return;
    }
    const { type, text } = part as Body;
    if (type === 'text' || type === 'input_text') {
      if (typeof text !== 'string') issues.add('string_type', [...loc, 'text'], 'Input should be a valid string');
      else texts.push(text);
      return;
    }
    throw apiError(`Content part type '${String(type)}' is not supported: this model accepts text only.`);
  });
  // vLLM joins text parts with newlines for string-format chat templates.
  return texts.join('\n');
}

export function parseChatRequest(value: unknown): ChatRequest {
  const body = asBody(value);
  const issues = new Issues();
  const messages = body['messages'];
  const turns: ChatTurn[] = [];
  if (messages === undefined) issues.add('missing', ['messages'], 'Field required');
  else if (!Array.isArray(messages)) issues.add('list_type', ['messages'], 'Input should be a valid list');
  else {
    messages.forEach((m: unknown, i) => {
      if (typeof m !== 'object' || m === null || Array.isArray(m)) {
        issues.add('model_type', ['messages', i], 'Input should be a valid dictionary');
        return;
      }
      const role = (m as Body)['role'];
      if (typeof role !== 'string') {
        issues.add(role === undefined ? 'missing' : 'string_type', ['messages', i, 'role'], role === undefined ? 'Field required' : 'Input should be a valid string');
        return;
      }
      turns.push({ role, content: contentText((m as Body)['content'], i, issues) });
    });
  }
  if (body['logprobs'] === true) issues.add('value_error', ['logprobs'], 'Value error, logprobs are not supported by this server.');
  const settings = parseGenerationSettings(body, issues);
  return { ...settings, turns };
}

function isTokenList(v: unknown): v is number[] {
  return Array.isArray(v) && v.every((t) => typeof t === 'number');
}

function checkTokens(tokens: number[]): number[] {
  for (const t of tokens) {
    if (!isValidTokenId(t)) throw apiError(`Token id ${t} is out of vocabulary`);
  }
  return tokens;
}

/** `prompt` as vLLM accepts it: string, list of strings, token ids, or list of token-id lists. */
function parsePrompts(value: unknown, encodeText: (prompt: string) => number[], issues: Issues | null = null): number[][] {
  const fail = (msg: string) => {
    if (issues) issues.add('value_error', ['prompt'], msg);
    else throw validationError([{ type: 'value_error', loc: ['body', 'prompt'], msg }]);
    return [];
  };
  if (value === undefined || value === null) return fail('Value error, Either prompt or prompt_embeds must be provided.');
  if (typeof value === 'string') return [encodeText(value)];
  if (!Array.isArray(value) || value.length === 0) return fail('Value error, prompt must be a non-empty string or list.');
  if (isTokenList(value)) return [checkTokens(value)];
  if (value.every((v) => typeof v === 'string')) return (value as string[]).map((s) => encodeText(s));
  if (value.every(isTokenList)) return (value as number[][]).map(checkTokens);
  return fail('Value error, prompt must be a string, a list of strings, a list of token ids, or a list of such lists.');
}

export function parseCompletionRequest(value: unknown, encoder: PromptEncoder = STAND_IN_ENCODER): CompletionRequest {
  const body = asBody(value);
  const issues = new Issues();
  const addSpecialTokens = body['add_special_tokens'] !== false;
  const prompts = parsePrompts(body['prompt'], (prompt) => encoder.text(prompt, addSpecialTokens), issues);
  if (body['echo'] === true) issues.add('value_error', ['echo'], 'Value error, echo is not supported by this server.');
  if (body['logprobs'] !== undefined && body['logprobs'] !== null) {
    issues.add('value_error', ['logprobs'], 'Value error, logprobs are not supported by this server.');
  }
  const settings = parseGenerationSettings(body, issues);
  for (const p of prompts) {
    if (p.length === 0) throw apiError('The decoder prompt cannot be empty');
  }
  return { ...settings, prompts };
}

export interface TokenizeRequest {
  model: string | undefined;
  /** Either a raw prompt or chat messages. */
  prompt?: string;
  turns?: ChatTurn[];
  addGenerationPrompt: boolean;
  /** vLLM's default: true for a prompt, false for messages (their template writes them). */
  addSpecialTokens: boolean;
}

export function parseTokenizeRequest(value: unknown): TokenizeRequest {
  const body = asBody(value);
  const issues = new Issues();
  const model = optionalString(body, 'model', issues);
  if (body['messages'] !== undefined) {
    const chat = parseChatRequest({ messages: body['messages'] });
    const addGenerationPrompt = optionalBool(body, 'add_generation_prompt', issues) ?? true;
    const addSpecialTokens = optionalBool(body, 'add_special_tokens', issues) ?? false;
    issues.throwIfAny();
    return { model, turns: chat.turns, addGenerationPrompt, addSpecialTokens };
  }
  const prompt = body['prompt'];
  if (typeof prompt !== 'string') {
    issues.add(prompt === undefined ? 'missing' : 'string_type', ['prompt'], prompt === undefined ? 'Field required' : 'Input should be a valid string');
  }
  const addSpecialTokens = optionalBool(body, 'add_special_tokens', issues) ?? true;
  issues.throwIfAny();
  return { model, prompt: prompt as string, addGenerationPrompt: false, addSpecialTokens };
}

export interface DetokenizeRequest {
  model: string | undefined;
  tokens: number[];
}

export function parseDetokenizeRequest(value: unknown): DetokenizeRequest {
  const body = asBody(value);
  const issues = new Issues();
  const model = optionalString(body, 'model', issues);
  const tokens = body['tokens'];
  if (tokens === undefined) issues.add('missing', ['tokens'], 'Field required');
  else if (!Array.isArray(tokens) || !tokens.every((t) => Number.isSafeInteger(t))) {
    issues.add('list_type', ['tokens'], 'Input should be a valid list of integers');
  }
  issues.throwIfAny();
  return { model, tokens: checkTokens(tokens as number[]) };
}
