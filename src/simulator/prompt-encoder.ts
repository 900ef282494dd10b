/**
 * How the simulator turns prompts into token ids: its own stand-in tokenizer and ChatML by
 * default, or a real model directory's tokenizer and chat template (`--tokenizer DIR`), so a
 * router given the same directory computes the ids the simulator caches and reports in its
 * KV events, as it would against vLLM serving that model.
 */
import { encodeChat, type ChatTurn } from './chat-template.js';
import { encode } from './tokenizer.js';

export interface PromptEncoder {
  /** A completion prompt; `addSpecialTokens` as the request says (vLLM's default: true). */
  text(prompt: string, addSpecialTokens: boolean): number[];
  /** Chat messages through the template, encoded without special tokens, as vLLM does. */
  chat(turns: readonly ChatTurn[], addGenerationPrompt: boolean): number[];
}

export const STAND_IN_ENCODER: PromptEncoder = {
  text: (prompt) => encode(prompt),
  chat: (turns, addGenerationPrompt) => encodeChat(turns, addGenerationPrompt),
};

/** Loaded only when asked for: a simulator with the stand-in tokenizer does not pay for the library. */
export async function modelDirectoryEncoder(dir: string): Promise<PromptEncoder> {
  const { loadModelTokenizer } = await import('../tokenize/model-tokenizer.js');
  const tokenizer = loadModelTokenizer(dir);
  if (tokenizer.renderChat([], { addGenerationPrompt: false, continueFinalMessage: false }) === undefined) {
    throw new RangeError(`tokenizer in ${dir}: no chat template (tokenizer_config.json chat_template or chat_template.jinja)`);
  }
  return {
    text: (prompt, addSpecialTokens) => tokenizer.encode(prompt, addSpecialTokens),
    chat: (turns, addGenerationPrompt) => tokenizer.encode(tokenizer.renderChat(turns, { addGenerationPrompt, continueFinalMessage: false })!, false),
  };
}
