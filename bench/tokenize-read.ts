/**
 * What reading a prompt the router has seen costs: 48 conversations of 13 messages (a ~400-word
 * system prompt, then 80-word questions and 60-word answers, about 5 KB of JSON each) through
 * the tiny model's chat template and tokenizer, read whole from the segment cache, warm.
 *
 *   npx tsx bench/tokenize-read.ts [--reps 60]
 */
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { REPO } from '../src/launcher/envoy.js';
import { loadModelTokenizer } from '../src/tokenize/model-tokenizer.js';
import { promptTokens } from '../src/tokenize/prompt-tokens.js';

const { values } = parseArgs({ options: { reps: { type: 'string', default: '60' } } });
const tokenizer = loadModelTokenizer(join(REPO, 'test/fixtures/tiny-tokenizer'));
const words = 'the of and to in is was for on that with as by at from his her it an were are which this be or has had not but'.split(' ');
let seed = 1;
const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
const text = (n: number) => Array.from({ length: n }, () => words[Math.floor(random() * words.length)]).join(' ');
const system = text(400);
const bodies = Array.from({ length: 48 }, () => {
  const messages = [{ role: 'system', content: system }];
  for (let turn = 0; turn < 6; turn++) messages.push({ role: 'user', content: text(80) }, { role: 'assistant', content: text(60) });
  return new TextEncoder().encode(JSON.stringify({ model: 'm', messages, max_tokens: 50, stream: true }));
});
const read = (body: Uint8Array) => {
  const prompt = promptTokens(tokenizer, '/v1/chat/completions', body);
  if (!prompt.ok) throw new Error(prompt.why);
  return prompt.reader;
};
for (const body of bodies) read(body).readAll(); // seen once: every piece cached

for (let round = 1; round <= 3; round++) {
  let renderMs = 0;
  let readMs = 0;
  let n = 0;
  for (let rep = 0; rep < Number(values.reps); rep++) {
    for (const body of bodies) {
      const a = performance.now();
      const reader = read(body);
      const b = performance.now();
      reader.readAll();
      readMs += performance.now() - b;
      renderMs += b - a;
      n++;
    }
  }
  console.log(`round ${round}: ${n} prompts of ${bodies[0]!.length} bytes; parse and render ${((1000 * renderMs) / n).toFixed(1)} us, read all ${((1000 * readMs) / n).toFixed(1)} us`);
}
console.log('segment cache', tokenizer.cacheStats());
