/**
 * ChatML rendering, the template of Qwen-style models. Turns render one after another, so a
 * conversation's tokens extend those of any earlier prefix of it ending in a generation prompt:
 * the property prefix caching (and prefix-aware routing) relies on.
 */
import { encode } from './tokenizer.js';

export interface ChatTurn {
  role: string;
  content: string;
}

export const GENERATION_PROMPT = '<|im_start|>assistant\n';

export function renderChat(turns: readonly ChatTurn[], addGenerationPrompt = true): string {
  let text = '';
  for (const turn of turns) text += `<|im_start|>${turn.role}\n${turn.content}<|im_end|>\n`;
  if (addGenerationPrompt) text += GENERATION_PROMPT;
  return text;
}

export function encodeChat(turns: readonly ChatTurn[], addGenerationPrompt = true): number[] {
  return encode(renderChat(turns, addGenerationPrompt));
}
