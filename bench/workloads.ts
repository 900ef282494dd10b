import { createPrng } from '../src/simulator/hash.js';

/**
 * Deterministic, seeded workloads for the routing benchmark. A workload is a set of
 * sessions; a session is a chain of requests where each may depend on the previous replies
 * (multi-turn chat). Single requests are one-turn sessions.
 */

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface BenchRequest {
  model: string;
  messages: ChatMessage[];
  maxTokens: number;
}

export interface Session {
  /** Builds turn `i` given the replies to turns 0..i-1. */
  turn(i: number, replies: readonly string[]): BenchRequest;
  turns: number;
}

export interface Workload {
  name: string;
  description: string;
  /** Models and how many simulated servers serve each. */
  fleet: Array<{ model: string; servers: number }>;
  sessions: Session[];
  /** Sessions in flight at once (closed loop). */
  concurrency: number;
}

/** Seeded floats in [0, 1), from the simulator's mulberry32. */
export function prng(seed: number): () => number {
  const next = createPrng(seed);
  return () => next() / 4294967296;
}

const SYLLABLES = ['ka', 'lo', 'mi', 'ren', 'tas', 'vo', 'quel', 'dri', 'som', 'pa', 'ne', 'ul', 'ix', 'bor', 'zen', 'ta', 'fi', 'gar'];

/** About `tokens` tokens (4 characters each) of pseudo-words. */
export function text(random: () => number, tokens: number): string {
  const target = tokens * 4;
  let out = '';
  while (out.length < target) {
    const n = 1 + Math.floor(random() * 3);
    let word = '';
    for (let i = 0; i < n; i++) word += SYLLABLES[Math.floor(random() * SYLLABLES.length)];
    out += (out ? ' ' : '') + word;
  }
  return out.slice(0, target);
}

/** Zipf-distributed index in [0, n): a few items are far more popular than the rest. */
function zipf(random: () => number, n: number, s = 1.1): number {
  let total = 0;
  for (let k = 1; k <= n; k++) total += 1 / k ** s;
  let r = random() * total;
  for (let k = 1; k <= n; k++) {
    r -= 1 / k ** s;
    if (r <= 0) return k - 1;
  }
  return n - 1;
}

const single = (request: BenchRequest): Session => ({ turns: 1, turn: () => request });


export function multiTurnChat(seed: number, quick: boolean): Workload {
  const random = prng(seed);
  const sessions = quick ? 16 : 48;
  const turns = quick ? 4 : 6;
  return {
    name: 'multi-turn-chat',
    description: `${sessions} chat sessions of ${turns} turns; each turn resends the growing history`,
    fleet: [{ model: 'llama-8b', servers: 4 }],
    concurrency: quick ? 16 : 24,
    sessions: Array.from({ length: sessions }, () => {
      const system = text(random, 300);
      const questions = Array.from({ length: turns }, () => text(random, 150));
      return {
        turns,
        turn(i, replies) {
          const messages: ChatMessage[] = [{ role: 'system', content: system }];
          for (let t = 0; t < i; t++) messages.push({ role: 'user', content: questions[t]! }, { role: 'assistant', content: replies[t] ?? '' });
          messages.push({ role: 'user', content: questions[i]! });
          return { model: 'llama-8b', messages, maxTokens: 48 };
        },
      };
    }),
  };
}

export function sharedSystemPrompts(seed: number, quick: boolean, model = 'llama-8b', servers = 4): Workload {
  const random = prng(seed);
  // 16 prompts of 2000 tokens: twice what one server's cache holds, half of the fleet's.
  const prompts = Array.from({ length: 16 }, () => text(random, 2000));
  const requests = quick ? 96 : 640;
  return {
    name: 'shared-system-prompts',
    description: `${requests} users, ${prompts.length} long system prompts (~2000 tokens, Zipf popularity), short questions`,
    fleet: [{ model, servers }],
    concurrency: 32,
    sessions: Array.from({ length: requests }, () =>
      single({
        model,
        messages: [
          { role: 'system', content: prompts[zipf(random, prompts.length, 0.6)]! },
          { role: 'user', content: text(random, 40) },
        ],
        maxTokens: 16,
      }),
    ),
  };
}

export function longDocumentQa(seed: number, quick: boolean): Workload {
  const random = prng(seed);
  // 8 documents of ~5000 tokens: more than twice what one server's cache holds, two thirds of the fleet's.
  const docs = Array.from({ length: 8 }, () => text(random, 5000));
  const requests = quick ? 48 : 400;
  return {
    name: 'long-document-qa',
    description: `${requests} questions over ${docs.length} documents of ~5000 tokens`,
    fleet: [{ model: 'llama-8b', servers: 4 }],
    concurrency: 24,
    sessions: Array.from({ length: requests }, () =>
      single({
        model: 'llama-8b',
        messages: [
          { role: 'system', content: 'Answer from the document.' },
          { role: 'user', content: `${docs[Math.floor(random() * docs.length)]!}\n\nQuestion: ${text(random, 30)}` },
        ],
        maxTokens: 16,
      }),
    ),
  };
}

export function randomPrompts(seed: number, quick: boolean, model = 'llama-8b', servers = 4): Workload {
  const random = prng(seed);
  const requests = quick ? 64 : 480;
  return {
    name: 'random-prompts',
    description: `${requests} unrelated prompts of ~800 tokens: nothing to cache`,
    fleet: [{ model, servers }],
    concurrency: 32,
    sessions: Array.from({ length: requests }, () =>
      single({ model, messages: [{ role: 'user', content: text(random, 800) }], maxTokens: 16 }),
    ),
  };
}

export function mixedTwoModels(seed: number, quick: boolean): Workload {
  const a = sharedSystemPrompts(seed, quick, 'llama-8b', 2);
  const b = randomPrompts(seed + 1, quick, 'qwen-7b', 2);
  const random = prng(seed + 2);
  const sessions = [...a.sessions.slice(0, a.sessions.length / 2), ...b.sessions.slice(0, b.sessions.length / 2)];
  for (let i = sessions.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [sessions[i], sessions[j]] = [sessions[j]!, sessions[i]!];
  }
  return {
    name: 'mixed-two-models',
    description: 'llama-8b with shared system prompts on 2 servers, qwen-7b with random prompts on 2 servers, interleaved',
    fleet: [
      { model: 'llama-8b', servers: 2 },
      { model: 'qwen-7b', servers: 2 },
    ],
    concurrency: 32,
    sessions,
  };
}

export function allWorkloads(seed: number, quick: boolean): Workload[] {
  const list = [multiTurnChat(seed, quick), sharedSystemPrompts(seed + 1, quick), longDocumentQa(seed + 2, quick), randomPrompts(seed + 3, quick), mixedTwoModels(seed + 4, quick)];
  return quick ? list.filter((w) => ['shared-system-prompts', 'long-document-qa', 'random-prompts'].includes(w.name)) : list;
}
