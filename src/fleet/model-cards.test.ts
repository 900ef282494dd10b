import { describe, expect, it } from 'vitest';
import type { ModelCard } from '../contract/local-answers.js';
import { modelCards } from './backend.js';

const card = (id: string, extra: Partial<ModelCard> = {}): ModelCard => ({ id, owned_by: 'vllm', root: `/models/${id}`, parent: null, ...extra });

describe('the fleet model list', () => {
  it('lists each model once, with the smallest context length any of its servers has', () => {
    const cards = modelCards([
      { id: 'b', models: ['llama', 'llama-lora'], cards: [card('llama', { max_model_len: 8192 }), card('llama-lora', { parent: 'llama', root: '/lora', max_model_len: null })] },
      { id: 'a', models: ['llama', 'llama-lora'], cards: [card('llama', { max_model_len: 4096, root: '/first' }), card('llama-lora', { parent: 'llama', root: '/lora', max_model_len: null })] },
      { id: 'c', models: ['qwen'], cards: [] },
    ]);
    expect(cards).toEqual([
      { id: 'llama', owned_by: 'vllm', root: '/first', parent: null, max_model_len: 4096 },
      // An adapter's card as vLLM gives it: its context length is null, and stays null.
      { id: 'llama-lora', owned_by: 'vllm', root: '/lora', parent: 'llama', max_model_len: null },
      // Named in the config: no server card, a plain one.
      { id: 'qwen', owned_by: 'vllm', root: 'qwen', parent: null },
    ]);
  });

  it('does not change the cards the backends hold', () => {
    const held = card('m', { max_model_len: 100 });
    modelCards([
      { id: 'a', models: ['m'], cards: [held] },
      { id: 'b', models: ['m'], cards: [card('m', { max_model_len: 50 })] },
    ]);
    expect(held.max_model_len).toBe(100);
  });
});
