/**
 * A backend that answers at once: vLLM's response shapes and metrics page, no model. It
 * isolates the cost of the proxy path in the overhead benchmark.
 *   tsx bench/instant-backend.ts PORT
 */
import { createServer } from 'node:http';
import { createEngine } from '../src/simulator/engine.js';
import { resolveEngineOptions } from '../src/simulator/engine-options.js';
import { createMetrics } from '../src/simulator/metrics.js';

const port = Number(process.argv[2] ?? 0);
// The page an idle simulator serves: vLLM's full set of series, histograms included (about
// 21 KB), so the router's scraping costs what it would against a real server. The cache is
// that of a long-context server (1M tokens, 128k context), so the 100k-token prompts fit.
const engineOptions = resolveEngineOptions({ numGpuBlocks: 65_536, maxModelLen: 131_072 });
const METRICS = createMetrics({ models: ['m'], engine: engineOptions }).render(createEngine(engineOptions).stats());
const reply = JSON.stringify({
  id: 'chatcmpl-1',
  object: 'chat.completion',
  created: 0,
  model: 'm',
  choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
});
const chunk = (content: string) =>
  `data: ${JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 0, model: 'm', choices: [{ index: 0, delta: { content } }] })}\n\n`;
const stream = chunk('o') + chunk('k') + 'data: [DONE]\n\n';

const server = createServer((req, res) => {
  if (req.method === 'GET') {
    if (req.url === '/metrics') return res.writeHead(200, { 'content-type': 'text/plain' }).end(METRICS);
    if (req.url === '/v1/models') return res.writeHead(200, { 'content-type': 'application/json' }).end('{"object":"list","data":[{"id":"m","object":"model"}]}');
    return res.writeHead(200).end();
  }
  let streaming = false;
  let head = '';
  req.on('data', (c: Buffer) => {
    if (head.length < 64) head += c.toString('latin1', 0, 64);
  });
  req.on('end', () => {
    streaming = /"stream":\s*true/.test(head) || head.includes('"stream":true');
    if (streaming) res.writeHead(200, { 'content-type': 'text/event-stream' }).end(stream);
    else res.writeHead(200, { 'content-type': 'application/json' }).end(reply);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => {
  console.log(`instant backend on ${(server.address() as { port: number }).port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
