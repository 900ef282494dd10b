import type { ChatRenderOptions, ModelTokenizer } from './model-tokenizer.js';
import type { TokenReader } from './token-reader.js';

/**
 * A request's prompt as the token ids vLLM will compute for it: the chat template rendered
 * over `messages` then encoded without special tokens (vLLM's default for chat), or the
 * `prompt` string encoded with them (its default for completions); `add_special_tokens` in
 * the body overrides either, as it does on vLLM. The ids are encoded as far as they are read.
 */
export type PromptTokens = { ok: true; reader: TokenReader } | { ok: false; why: string };

const CHAT_PATHS = new Set(['/v1/chat/completions']);
const COMPLETION_PATHS = new Set(['/v1/completions']);

const skip = (why: string): PromptTokens => ({ ok: false, why });

/**
 * Bodies above this are matched on their text: encoding new text takes about 1.3 us a token on
 * the router's one thread, so a 512 KiB prompt (some 130k tokens, beyond most models' context)
 * that a server holds but this router never read holds every other request back by up to 0.2 s.
 */
export const MAX_TOKENIZED_BODY_BYTES = 512 * 1024;

/** Message content as vLLM hands it to a string template: text parts joined by newlines. */
function textContent(content: unknown): string | null | undefined {
  if (typeof content === 'string' || content === null || content === undefined) return content;
  if (!Array.isArray(content)) return undefined;
  const texts: string[] = [];
  for (const part of content) {
    if (typeof part !== 'object' || part === null || (part as { type?: unknown }).type !== 'text') return undefined;
    const text = (part as { text?: unknown }).text;
    if (typeof text !== 'string') return undefined;
    texts.push(text);
  }
  return texts.join('\n');
}

function chatTokens(tokenizer: ModelTokenizer, body: Record<string, unknown>): PromptTokens {
  if (!Array.isArray(body['messages'])) return skip('no-messages');
  if (body['chat_template'] !== undefined) return skip('request-template');
  const messages: unknown[] = [];
  for (const message of body['messages']) {
    if (typeof message !== 'object' || message === null) return skip('bad-message');
    const content = textContent((message as { content?: unknown }).content);
    if (content === undefined && (message as { content?: unknown }).content !== undefined) return skip('non-text-content');
    messages.push({ ...message, content: content ?? '' });
  }
  const kwargs = body['chat_template_kwargs'];
  const options: ChatRenderOptions = {
    addGenerationPrompt: body['add_generation_prompt'] !== false,
    continueFinalMessage: body['continue_final_message'] === true,
    ...(body['tools'] !== undefined && body['tools'] !== null ? { tools: body['tools'] } : {}),
    ...(body['documents'] !== undefined && body['documents'] !== null ? { documents: body['documents'] } : {}),
    ...(typeof kwargs === 'object' && kwargs !== null && !Array.isArray(kwargs) ? { extra: kwargs as Record<string, unknown> } : {}),
  };
  const text = tokenizer.renderChat(messages, options);
  if (text === undefined) return skip('no-chat-template');
  return { ok: true, reader: tokenizer.read(text, body['add_special_tokens'] === true) };
}

function completionTokens(tokenizer: ModelTokenizer, body: Record<string, unknown>): PromptTokens {
  const prompt = Array.isArray(body['prompt']) ? (body['prompt'] as unknown[])[0] : body['prompt'];
  if (typeof prompt !== 'string') return skip('not-text');
  return { ok: true, reader: tokenizer.read(prompt, body['add_special_tokens'] !== false) };
}

export function promptTokens(tokenizer: ModelTokenizer, path: string, body: Uint8Array): PromptTokens {
  const chat = CHAT_PATHS.has(path);
  if (!chat && !COMPLETION_PATHS.has(path)) return skip('path');
  if (body.byteLength > MAX_TOKENIZED_BODY_BYTES) return skip('too-long');
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  } catch {
    return skip('not-json');
  }
  if (typeof parsed !== 'object' || parsed === null) return skip('not-json');
  // vLLM keys a salted request's blocks apart (its events carry the salt in extra_keys, which
  // the index does not read): its token ids would match blocks it cannot use.
  if ((parsed as Record<string, unknown>)['cache_salt'] !== undefined) return skip('cache-salt');
  try {
    return chat ? chatTokens(tokenizer, parsed as Record<string, unknown>) : completionTokens(tokenizer, parsed as Record<string, unknown>);
  } catch (err) {
    // A template that raises, or content it cannot render: vLLM will say what is wrong.
    return skip(`template-error: ${(err as Error).message}`);
  }
}
