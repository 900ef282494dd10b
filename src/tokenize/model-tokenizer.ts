import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import { createSegmentCache, type SegmentCache } from './segment-cache.js';
import { cutsCleanly } from './text-chunks.js';
import { createTokenReader, type TokenReader } from './token-reader.js';

/**
 * One model's tokenizer and chat template, read from a Hugging Face model directory
 * (`tokenizer.json`, `tokenizer_config.json`, optionally `chat_template.jinja`): the files
 * vLLM itself loads, so the router counts the same token ids the server will.
 */
export interface ModelTokenizer {
  readonly dir: string;
  /** Token ids of `text`, as the model's tokenizer makes them. */
  encode(text: string, addSpecialTokens: boolean): number[];
  /** The same ids, encoded only as far as the caller reads. */
  read(text: string, addSpecialTokens: boolean): TokenReader;
  /** The model's chat template rendered over `messages`, or undefined when the model has none. */
  renderChat(messages: readonly unknown[], options: ChatRenderOptions): string | undefined;
  /** Text encoded piecewise between added tokens, reused from the cache (false: every call encodes all). */
  readonly segmented: boolean;
  /** Long text between added tokens cut into pieces of about CHUNK_CHARS, each encoded and cached alone. */
  readonly chunked: boolean;
  cacheStats(): { segments: number; chars: number; hits: number; misses: number };
}

export interface ChatRenderOptions {
  addGenerationPrompt: boolean;
  continueFinalMessage: boolean;
  tools?: unknown;
  documents?: unknown;
  /** The request's `chat_template_kwargs`. */
  extra?: Record<string, unknown>;
}

export class TokenizerLoadError extends Error {
  constructor(dir: string, why: string) {
    super(`tokenizer in ${dir}: ${why}`);
    this.name = 'TokenizerLoadError';
  }
}

interface AddedTokenSpec {
  id: number;
  content: string;
  lstrip?: boolean;
  rstrip?: boolean;
  single_word?: boolean;
  normalized?: boolean;
}

function readJson(dir: string, file: string, required: boolean): Record<string, unknown> | undefined {
  const path = join(dir, file);
  if (!existsSync(path)) {
    if (required) throw new TokenizerLoadError(dir, `${file} not found`);
    return undefined;
  }
  try {
    const value: unknown = JSON.parse(readFileSync(path, 'utf8'));
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not a JSON object');
    return value as Record<string, unknown>;
  } catch (err) {
    throw new TokenizerLoadError(dir, `${file}: ${(err as Error).message}`);
  }
}

/** `bos_token` and friends are strings or `{content}` objects in tokenizer_config.json. */
function tokenText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && typeof (value as { content?: unknown }).content === 'string') return (value as { content: string }).content;
  return undefined;
}

/** The template as transformers picks it: a string, or from a named list the `tool_use` one when tools are given. */
function chatTemplates(dir: string, config: Record<string, unknown>): { plain?: Template; tools?: Template } {
  const compile = (source: string, name: string) => {
    try {
      return new Template(source);
    } catch (err) {
      throw new TokenizerLoadError(dir, `chat template ${name}: ${(err as Error).message}`);
    }
  };
  const raw = config['chat_template'];
  if (typeof raw === 'string') return { plain: compile(raw, 'chat_template') };
  if (Array.isArray(raw)) {
    const named = new Map(raw.flatMap((t: { name?: unknown; template?: unknown }) => (typeof t.name === 'string' && typeof t.template === 'string' ? [[t.name, t.template] as const] : [])));
    const plain = named.get('default');
    const tools = named.get('tool_use') ?? plain;
    return { ...(plain ? { plain: compile(plain, 'default') } : {}), ...(tools ? { tools: compile(tools, 'tool_use') } : {}) };
  }
  const file = join(dir, 'chat_template.jinja');
  if (existsSync(file)) return { plain: compile(readFileSync(file, 'utf8'), 'chat_template.jinja') };
  return {};
}

/**
 * `continue_final_message`, as transformers does it: the prompt ends where the last message's
 * content does, so the model carries on writing it instead of starting a new turn.
 */
function cutAfterFinalMessage(text: string, messages: readonly unknown[]): string {
  const content = (messages[messages.length - 1] as { content?: unknown } | undefined)?.content;
  if (typeof content !== 'string') return text;
  const at = text.lastIndexOf(content.trim());
  return at < 0 ? text : text.slice(0, at + content.trim().length);
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Characters of prompt segments a model's tokenizer keeps ids for (a few MB of ids and text). */
export const SEGMENT_CACHE_CHARS = 8 * 1024 * 1024;

export function loadModelTokenizer(dir: string, cacheChars = SEGMENT_CACHE_CHARS): ModelTokenizer {
  const json = readJson(dir, 'tokenizer.json', true)!;
  const config = readJson(dir, 'tokenizer_config.json', false) ?? {};
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(json, config);
  } catch (err) {
    throw new TokenizerLoadError(dir, `tokenizer.json: ${(err as Error).message}`);
  }
  const templates = chatTemplates(dir, config);
  const specials: Record<string, string> = {};
  for (const name of ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token']) {
    const text = tokenText(config[name]);
    if (text !== undefined) specials[name] = text;
  }

  const added = (Array.isArray(json['added_tokens']) ? json['added_tokens'] : []) as AddedTokenSpec[];
  const idOf = new Map(added.map((t) => [t.content, t.id]));
  // The tokenizer splits text at added tokens before anything else, so the text between two
  // of them encodes alone: the same ids whether the rest of the prompt is there or not. Not
  // so when an added token eats the spaces beside it, or is matched after normalisation.
  const plainSplit = added.length > 0 && added.every((t) => !t.lstrip && !t.rstrip && !t.single_word && !(t.normalized && json['normalizer']));
  const splitter = plainSplit
    ? new RegExp(`(${[...idOf.keys()].sort((a, b) => b.length - a.length).map(escapeRegExp).join('|')})`)
    : undefined;
  const encodePlain = (text: string) => tokenizer.encode(text, { add_special_tokens: false }).ids;
  const encodeTyped = (text: string) => Uint32Array.from(encodePlain(text));
  const cache: SegmentCache = createSegmentCache(encodeTyped, cacheChars);
  const uncached: SegmentCache = { encode: encodeTyped, isCheap: () => false, stats: () => ({ segments: 0, chars: 0, hits: 0, misses: 0 }) };

  // What the post-processor adds around a text (a BOS, say), found by encoding one letter both ways.
  const bare: number[] = encodePlain('a');
  const full: number[] = tokenizer.encode('a').ids;
  const at = full.findIndex((_, i) => bare.every((id, j) => full[i + j] === id));
  const before = at < 0 ? [] : full.slice(0, at);
  const after = at < 0 ? [] : full.slice(at + bare.length);

  const readSegments = (text: string, chunked: boolean, special: boolean) =>
    createTokenReader({ parts: splitter ? text.split(splitter) : [text], idOf, cache, chunked, before: special ? before : [], after: special ? after : [] });
  const readWhole = (text: string, special: boolean) =>
    createTokenReader({ parts: [text], idOf, cache: uncached, chunked: false, before: special ? before : [], after: special ? after : [] });

  // Checked, not assumed: a tokenizer whose pieces change with what is beside them encodes whole.
  const probe = added[0] ? `Hello  world.\n${added[0].content} next\n\n line ${added[0].content}tail x` : '';
  const segmented = added.length === 0 || (splitter !== undefined && readSegments(probe, false, false).readAll().join() === encodePlain(probe).join());
  const chunked = segmented && cutsCleanly(encodePlain);
  const read = (text: string, special: boolean) => (segmented ? readSegments(text, chunked, special) : readWhole(text, special));

  return {
    dir,
    segmented,
    chunked,
    read,
    encode: (text, addSpecialTokens) => Array.from(read(text, addSpecialTokens).readAll()),
    renderChat(messages, options) {
      const template = options.tools !== undefined ? templates.tools : templates.plain;
      if (!template) return undefined;
      const text = template.render({
        ...specials,
        ...options.extra,
        messages,
        add_generation_prompt: options.addGenerationPrompt && !options.continueFinalMessage,
        ...(options.tools !== undefined ? { tools: options.tools } : {}),
        ...(options.documents !== undefined ? { documents: options.documents } : {}),
      });
      return options.continueFinalMessage ? cutAfterFinalMessage(text, messages) : text;
    },
    cacheStats: () => cache.stats(),
  };
}
