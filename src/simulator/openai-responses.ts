/**
 * Response bodies in the field order and null conventions of vLLM's protocol models
 * (ChatCompletionResponse, ChatCompletionStreamResponse, CompletionResponse, ...). Stream
 * chunks follow serving_chat.py (exclude_unset) and serving_completion.py (all fields).
 */
import { randomBytes } from 'node:crypto';

export interface Usage {
  prompt_tokens: number;
  total_tokens: number;
  completion_tokens: number;
  prompt_tokens_details?: { cached_tokens: number } | null;
}

export function usage(promptTokens: number, completionTokens: number, cachedTokens?: number): Usage {
  const u: Usage = {
    prompt_tokens: promptTokens,
    total_tokens: promptTokens + completionTokens,
    completion_tokens: completionTokens,
  };
  // As vLLM with --enable-prompt-tokens-details: reported only when something was cached.
  if (cachedTokens !== undefined) u.prompt_tokens_details = cachedTokens > 0 ? { cached_tokens: cachedTokens } : null;
  return u;
}

export interface ResponseHead {
  id: string;
  created: number;
  model: string;
}

export function chatCompletion(head: ResponseHead, text: string, finishReason: string, u: Usage) {
  return {
    id: head.id,
    object: 'chat.completion',
    created: head.created,
    model: head.model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: text,
          refusal: null,
          annotations: null,
          audio: null,
          function_call: null,
          tool_calls: [],
          reasoning_content: null,
        },
        logprobs: null,
        finish_reason: finishReason,
        stop_reason: null,
        token_ids: null,
      },
    ],
    service_tier: null,
    system_fingerprint: null,
    usage: u,
    prompt_logprobs: null,
    prompt_token_ids: null,
    kv_transfer_params: null,
  };
}

interface ChatDelta {
  role?: string;
  content?: string;
}

/** One chat stream chunk; finishReason undefined for the role chunk, null mid-stream. */
export function chatChunk(head: ResponseHead, delta: ChatDelta, finishReason: string | null | undefined, u?: Usage) {
  const choice: Record<string, unknown> = { index: 0, delta, logprobs: null, finish_reason: finishReason ?? null };
  if (finishReason !== undefined) {
    if (finishReason !== null) choice['stop_reason'] = null;
    choice['token_ids'] = null;
  }
  const chunk: Record<string, unknown> = {
    id: head.id,
    object: 'chat.completion.chunk',
    created: head.created,
    model: head.model,
    choices: [choice],
  };
  if (u) chunk['usage'] = u;
  return chunk;
}

export function chatUsageChunk(head: ResponseHead, u: Usage) {
  return { id: head.id, object: 'chat.completion.chunk', created: head.created, model: head.model, choices: [], usage: u };
}

export interface CompletionChoice {
  text: string;
  finishReason: string;
}

export function textCompletion(head: ResponseHead, choices: readonly CompletionChoice[], u: Usage) {
  return {
    id: head.id,
    object: 'text_completion',
    created: head.created,
    model: head.model,
    choices: choices.map((c, index) => ({
      index,
      text: c.text,
      logprobs: null,
      finish_reason: c.finishReason,
      stop_reason: null,
      token_ids: null,
      prompt_logprobs: null,
      prompt_token_ids: null,
    })),
    service_tier: null,
    system_fingerprint: null,
    usage: u,
    kv_transfer_params: null,
  };
}

export function completionChunk(head: ResponseHead, index: number, text: string, finishReason: string | null, u?: Usage) {
  return {
    id: head.id,
    object: 'text_completion',
    created: head.created,
    model: head.model,
    choices: [
      {
        index,
        text,
        logprobs: null,
        finish_reason: finishReason,
        stop_reason: null,
        prompt_token_ids: null,
        token_ids: null,
      },
    ],
    usage: u ?? null,
  };
}

export function completionUsageChunk(head: ResponseHead, u: Usage) {
  return { id: head.id, object: 'text_completion', created: head.created, model: head.model, choices: [], usage: u };
}

export function modelList(models: readonly string[], maxModelLen: number, created: number, adapters: ReadonlyMap<string, string> = new Map()) {
  // vLLM reports the loaded checkpoint as root (every served name shares it); an adapter's root is its path, its parent the model.
  const cards = [...models.map((id) => ({ id, root: models[0], parent: null as string | null })), ...[...adapters].map(([id, path]) => ({ id, root: path, parent: models[0]! }))];
  return {
    object: 'list',
    data: cards.map(({ id, root, parent }) => ({
      id,
      object: 'model',
      created,
      owned_by: 'vllm',
      root,
      parent,
      max_model_len: maxModelLen,
      permission: [
        {
          // vLLM makes a fresh permission id on every call.
          id: `modelperm-${randomBytes(8).toString('hex')}`,
          object: 'model_permission',
          created,
          allow_create_engine: false,
          allow_sampling: true,
          allow_logprobs: true,
          allow_search_indices: false,
          allow_view: true,
          allow_fine_tuning: false,
          organization: '*',
          group: null,
          is_blocking: false,
        },
      ],
    })),
  };
}
