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
  /**
   * Sent straight to server `direct` (modulo the fleet's size), not through the router: other
   * traffic on the same servers (another gateway, batch jobs), left out of the figures.
   */
  direct?: number;
}

export interface Workload {
  name: string;
  description: string;
  /** Models and how many simulated servers serve each. */
  fleet: Array<{ model: string; servers: number }>;
  sessions: Session[];
  /** Sessions in flight at once (closed loop). */
  concurrency: number;
  /** LoRA adapters every server serves beside the model, and how many fit in one batch (--max-loras). */
  lora?: { adapters: string[]; maxLoras: number };
}

/** Seeded floats in [0, 1), from the simulator's mulberry32. */
export function prng(seed: number): () => number {
  const next = createPrng(seed);
  return () => next() / 4294967296;
}

const SYLLABLES = ['ka', 'lo', 'mi', 'ren', 'tas', 'vo', 'quel', 'dri', 'som', 'pa', 'ne', 'ul', 'ix', 'bor', 'zen', 'ta', 'fi', 'gar'];

/**
 * About `tokens` tokens of pseudo-words: 4 characters each for the simulator's stand-in
 * tokenizer; a run whose servers use a model's tokenizer says how many characters make one of its tokens.
 */
export function text(random: () => number, tokens: number, charsPerToken = 4): string {
  const target = Math.round(tokens * charsPerToken);
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


/**
 * How big a run is: `full` for the simulated fleet (4 servers, 8 slots each, real time),
 * `quick` a smoke test of the harness, `vllm` for two or three real vLLM servers on CPU (one
 * core each), which serve a few requests per second: fewer, shorter prompts, fewer clients.
 */
export type WorkloadSize = 'full' | 'quick' | 'vllm';

/** A workload's model and how many servers serve it. */
export interface FleetShape {
  model: string;
  servers: number;
}

const FLEET_OF_4: FleetShape = { model: 'llama-8b', servers: 4 };

export function multiTurnChat(seed: number, size: WorkloadSize, fleet = FLEET_OF_4, charsPerToken = 4): Workload {
  const random = prng(seed);
  const { sessions, turns, concurrency, systemTokens, questionTokens } = {
    full: { sessions: 48, turns: 6, concurrency: 24, systemTokens: 300, questionTokens: 150 },
    quick: { sessions: 16, turns: 4, concurrency: 16, systemTokens: 300, questionTokens: 150 },
    vllm: { sessions: 16, turns: 4, concurrency: 4, systemTokens: 150, questionTokens: 40 },
  }[size];
  const model = fleet.model;
  return {
    name: 'multi-turn-chat',
    description: `${sessions} chat sessions of ${turns} turns; each turn resends the growing history`,
    fleet: [fleet],
    concurrency,
    sessions: Array.from({ length: sessions }, () => {
      const system = text(random, systemTokens, charsPerToken);
      const questions = Array.from({ length: turns }, () => text(random, questionTokens, charsPerToken));
      return {
        turns,
        turn(i, replies) {
          const messages: ChatMessage[] = [{ role: 'system', content: system }];
          for (let t = 0; t < i; t++) messages.push({ role: 'user', content: questions[t]! }, { role: 'assistant', content: replies[t] ?? '' });
          messages.push({ role: 'user', content: questions[i]! });
          return { model, messages, maxTokens: 48 };
        },
      };
    }),
  };
}

export function sharedSystemPrompts(seed: number, size: WorkloadSize, fleet = FLEET_OF_4, charsPerToken = 4): Workload {
  const random = prng(seed);
  // Simulated fleet: 16 prompts of 2000 tokens, twice what one server's cache holds, half of
  // the fleet's. Real vLLM (256 blocks of 32 tokens; its tokenizer makes ~2.7 tokens of each
  // of ours): 10 prompts of ~1100 tokens, about 1.3x what one server holds.
  const { prompts: count, promptTokens, requests, concurrency } = {
    full: { prompts: 16, promptTokens: 2000, requests: 640, concurrency: 32 },
    quick: { prompts: 16, promptTokens: 2000, requests: 96, concurrency: 32 },
    vllm: { prompts: 10, promptTokens: 400, requests: 160, concurrency: 4 },
  }[size];
  const prompts = Array.from({ length: count }, () => text(random, promptTokens, charsPerToken));
  const model = fleet.model;
  return {
    name: 'shared-system-prompts',
    description: `${requests} users, ${prompts.length} long system prompts (~${promptTokens} tokens, Zipf popularity), short questions`,
    fleet: [fleet],
    concurrency,
    sessions: Array.from({ length: requests }, () =>
      single({
        model,
        messages: [
          { role: 'system', content: prompts[zipf(random, prompts.length, 0.6)]! },
          { role: 'user', content: text(random, 40, charsPerToken) },
        ],
        maxTokens: 16,
      }),
    ),
  };
}

export function longDocumentQa(seed: number, size: WorkloadSize, fleet = FLEET_OF_4, charsPerToken = 4): Workload {
  const random = prng(seed);
  // Simulated fleet: 8 documents of ~5000 tokens, more than twice what one server's cache
  // holds, two thirds of the fleet's. Real vLLM: 5 documents of ~2700 of its tokens, 1.6x what
  // one server holds.
  const { documents, documentTokens, requests, concurrency } = {
    full: { documents: 8, documentTokens: 5000, requests: 400, concurrency: 24 },
    quick: { documents: 8, documentTokens: 5000, requests: 48, concurrency: 24 },
    vllm: { documents: 5, documentTokens: 1000, requests: 100, concurrency: 4 },
  }[size];
  const docs = Array.from({ length: documents }, () => text(random, documentTokens, charsPerToken));
  const model = fleet.model;
  return {
    name: 'long-document-qa',
    description: `${requests} questions over ${docs.length} documents of ~${documentTokens} tokens`,
    fleet: [fleet],
    concurrency,
    sessions: Array.from({ length: requests }, () =>
      single({
        model,
        messages: [
          { role: 'system', content: 'Answer from the document.' },
          { role: 'user', content: `${docs[Math.floor(random() * docs.length)]!}\n\nQuestion: ${text(random, 30, charsPerToken)}` },
        ],
        maxTokens: 16,
      }),
    ),
  };
}

export function randomPrompts(seed: number, size: WorkloadSize, fleet = FLEET_OF_4, charsPerToken = 4): Workload {
  const random = prng(seed);
  const { requests, promptTokens, concurrency } = {
    full: { requests: 480, promptTokens: 800, concurrency: 32 },
    quick: { requests: 64, promptTokens: 800, concurrency: 32 },
    vllm: { requests: 160, promptTokens: 200, concurrency: 4 },
  }[size];
  const model = fleet.model;
  return {
    name: 'random-prompts',
    description: `${requests} unrelated prompts of ~${promptTokens} tokens: nothing to cache`,
    fleet: [fleet],
    concurrency,
    sessions: Array.from({ length: requests }, () =>
      single({ model, messages: [{ role: 'user', content: text(random, promptTokens, charsPerToken) }], maxTokens: 16 }),
    ),
  };
}

export function mixedTwoModels(seed: number, size: WorkloadSize, charsPerToken = 4): Workload {
  const a = sharedSystemPrompts(seed, size, { model: 'llama-8b', servers: 2 }, charsPerToken);
  const b = randomPrompts(seed + 1, size, { model: 'qwen-7b', servers: 2 }, charsPerToken);
  const random = prng(seed + 2);
  const sessions = [...a.sessions.slice(0, a.sessions.length / 2), ...b.sessions.slice(0, b.sessions.length / 2)];
  for (let i = sessions.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [sessions[i], sessions[j]] = [sessions[j]!, sessions[i]!];
  }
  return {
    name: 'mixed-two-models',
    description: 'llama-8b with shared system prompts on 2 servers, qwen-7b with random prompts on 2 servers, interleaved',
    fleet: [a.fleet[0]!, b.fleet[0]!],
    concurrency: a.concurrency,
    sessions,
  };
}

/**
 * Shared prompts routed through the router while other traffic, sent straight to the servers,
 * fills their caches with prompts never seen again: what a router believes a server caches
 * goes stale unless the server says what it evicted.
 */
export function cachePressure(seed: number, size: WorkloadSize, fleet = FLEET_OF_4, charsPerToken = 4): Workload {
  const random = prng(seed);
  const { prompts: count, promptTokens, requests, directShare, directTokens, concurrency } = {
    full: { prompts: 24, promptTokens: 1500, requests: 640, directShare: 0.4, directTokens: 2000, concurrency: 32 },
    quick: { prompts: 24, promptTokens: 1500, requests: 128, directShare: 0.4, directTokens: 2000, concurrency: 32 },
    vllm: { prompts: 10, promptTokens: 300, requests: 160, directShare: 0.4, directTokens: 400, concurrency: 4 },
  }[size];
  const prompts = Array.from({ length: count }, () => text(random, promptTokens, charsPerToken));
  const model = fleet.model;
  const sessions: Session[] = [];
  let directs = 0;
  for (let i = 0; i < requests; i++) {
    if (random() < directShare) {
      const session = single({ model, messages: [{ role: 'user', content: text(random, directTokens, charsPerToken) }], maxTokens: 16 });
      sessions.push({ ...session, direct: directs++ });
    } else {
      const system = prompts[Math.floor(random() * prompts.length)]!;
      sessions.push(single({ model, messages: [{ role: 'system', content: system }, { role: 'user', content: text(random, 40, charsPerToken) }], maxTokens: 16 }));
    }
  }
  return {
    name: 'cache-pressure',
    description: `${count} shared prompts of ~${promptTokens} tokens through the router, ${directShare * 100}% other traffic (unique ~${directTokens}-token prompts) sent straight to the servers`,
    fleet: [fleet],
    concurrency,
    sessions,
  };
}

/**
 * Many LoRA adapters of one model, popular by a Zipf law, on servers that hold four in a
 * batch: a request for an adapter not at work on its server waits for a slot and a load.
 */
export function multiAdapter(seed: number, size: WorkloadSize, fleet = FLEET_OF_4, charsPerToken = 4): Workload {
  const random = prng(seed);
  const { adapters: count, requests, promptTokens, concurrency } = {
    full: { adapters: 16, requests: 480, promptTokens: 300, concurrency: 16 },
    quick: { adapters: 16, requests: 96, promptTokens: 300, concurrency: 16 },
    vllm: { adapters: 4, requests: 80, promptTokens: 100, concurrency: 4 },
  }[size];
  const adapters = Array.from({ length: count }, (_, i) => `${fleet.model}-lora-${i}`);
  return {
    name: 'multi-adapter',
    description: `${requests} requests for ${count} LoRA adapters of ${fleet.model} (Zipf popularity), ~${promptTokens}-token prompts, 4 adapters per batch`,
    fleet: [fleet],
    concurrency,
    lora: { adapters, maxLoras: 4 },
    sessions: Array.from({ length: requests }, () =>
      single({ model: adapters[zipf(random, count)]!, messages: [{ role: 'user', content: text(random, promptTokens, charsPerToken) }], maxTokens: 32 }),
    ),
  };
}

/**
 * The benchmark's workloads at a size. On real vLLM every server serves one model (`fleet`),
 * so the two-model workload is left out there.
 */
export function allWorkloads(seed: number, size: WorkloadSize, fleet = FLEET_OF_4, charsPerToken = 4): Workload[] {
  const list = [
    multiTurnChat(seed, size, fleet, charsPerToken),
    sharedSystemPrompts(seed + 1, size, fleet, charsPerToken),
    longDocumentQa(seed + 2, size, fleet, charsPerToken),
    randomPrompts(seed + 3, size, fleet, charsPerToken),
    ...(size === 'vllm' ? [] : [mixedTwoModels(seed + 4, size, charsPerToken)]),
    cachePressure(seed + 5, size, fleet, charsPerToken),
    // Real vLLM here serves one adapter (the tiny model's), not sixteen.
    ...(size === 'vllm' ? [] : [multiAdapter(seed + 6, size, fleet, charsPerToken)]),
  ];
  return size === 'quick' ? list.filter((w) => ['shared-system-prompts', 'long-document-qa', 'random-prompts', 'cache-pressure', 'multi-adapter'].includes(w.name)) : list;
}
