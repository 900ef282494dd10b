import type { PromptSource } from '../types.js';

/**
 * A prompt cut into fixed-size blocks, each hash chained to the previous one (as vLLM chains
 * its KV block hashes), so equal hashes at position i mean equal prompts up to block i.
 * Text is cut by characters: the router has no tokenizer; how many characters make a token is
 * learned per backend (see token-ratio.ts).
 */
export interface PromptBlocks {
  /** Chained block hashes; only full blocks, as in vLLM. */
  hashes: Float64Array;
  /** Prompt length in its units: characters of text, or token ids. */
  units: number;
  /** Units one block covers. */
  unitsPerBlock: number;
  /** True when the units are token ids (no tokenizer estimate needed). */
  exactTokens: boolean;
}

export interface BlockSettings {
  blockChars: number;
  charsPerToken: number;
  /** Token-id prompts are cut every this many ids. */
  blockTokens: number;
}

const EMPTY = new Float64Array(0);

/** Two 32-bit FNV-1a lanes folded into one exactly representable 53-bit number. */
function fold(a: number, b: number): number {
  return (a >>> 0) * 2097152 + (b >>> 11);
}

export function hashText(text: string, settings: BlockSettings): PromptBlocks {
  const size = settings.blockChars;
  const count = Math.floor(text.length / size);
  const hashes = count === 0 ? EMPTY : new Float64Array(count);
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  let i = 0;
  for (let block = 0; block < count; block++) {
    const end = i + size;
    for (; i < end; i++) {
      const c = text.charCodeAt(i);
      a = Math.imul(a ^ c, 16777619);
      b = Math.imul(b ^ c, 2246822519) ^ (b >>> 15);
    }
    // The lanes carry over into the next block: the chain includes every earlier character.
    hashes[block] = fold(a, b);
  }
  return { hashes, units: Math.max(1, text.length), unitsPerBlock: size, exactTokens: false };
}

// The same chained loop as hashText, over ids instead of char codes: written twice on purpose,
// since a shared loop taking an accessor would cost a call per character on the hot path.
export function hashTokens(tokens: readonly number[], settings: BlockSettings): PromptBlocks {
  const size = settings.blockTokens;
  const count = Math.floor(tokens.length / size);
  const hashes = count === 0 ? EMPTY : new Float64Array(count);
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  let i = 0;
  for (let block = 0; block < count; block++) {
    const end = i + size;
    for (; i < end; i++) {
      const t = tokens[i]! | 0;
      a = Math.imul(a ^ t, 16777619);
      b = Math.imul(b ^ t, 2246822519) ^ (b >>> 15);
    }
    hashes[block] = fold(a, b);
  }
  return { hashes, units: Math.max(1, tokens.length), unitsPerBlock: size, exactTokens: true };
}

/**
 * Renders chat messages to one stable text: a conversation's rendering is a prefix of the
 * rendering of any longer conversation that starts with the same messages, as with a real
 * chat template.
 */
export function renderMessages(messages: readonly unknown[]): string {
  let out = '';
  for (const message of messages) {
    if (typeof message !== 'object' || message === null) {
      out += `\u0000?\u0001${JSON.stringify(message)}`;
      continue;
    }
    const m = message as Record<string, unknown>;
    out += `\u0000${typeof m.role === 'string' ? m.role : '?'}\u0001`;
    const content = m.content;
    if (typeof content === 'string') out += content;
    else if (Array.isArray(content)) {
      for (const part of content) {
        const p = part as Record<string, unknown> | null;
        if (p && p.type === 'text' && typeof p.text === 'string') out += p.text;
        else out += JSON.stringify(part);
      }
    } else if (content !== undefined && content !== null) out += JSON.stringify(content);
    if (m.tool_calls !== undefined) out += JSON.stringify(m.tool_calls);
  }
  return out;
}

export function promptBlocks(prompt: PromptSource, settings: BlockSettings): PromptBlocks {
  switch (prompt.kind) {
    case 'messages':
      return hashText(renderMessages(prompt.messages), settings);
    case 'text':
      return hashText(prompt.text, settings);
    case 'tokens':
      return hashTokens(prompt.tokens, settings);
    case 'none':
      return { hashes: EMPTY, units: 1, unitsPerBlock: settings.blockChars, exactTokens: false };
  }
}
