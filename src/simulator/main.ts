/** CLI: node dist/simulator/main.js --port 8001 --model llama-8b [--time-scale 0.1] ... */
import { parseCliArgs, UsageError, USAGE } from './cli-args.js';
import { pubBinds } from './kv-events-config.js';
import { startSimulator } from './server.js';

async function main(): Promise<void> {
  let options;
  try {
    options = parseCliArgs(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`vllm-sim: error: ${err.message}\n${USAGE}\n`);
    process.exit(2);
  }
  if (options === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  let sim;
  try {
    sim = await startSimulator(options);
  } catch (err) {
    // Engine settings vLLM would refuse (e.g. KV cache smaller than max_model_len) are usage errors too.
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`vllm-sim: error: ${message}\n`);
    process.exit(err instanceof RangeError ? 2 : 1);
  }
  const publisher = sim.kvEventPublisher;
  const kvLine = publisher
    ? `vllm-sim KV events: PUB ${pubBinds(publisher.endpoint) ? 'bound at' : 'connecting to'} ${publisher.endpoint}` +
      `${publisher.replayEndpoint ? `, replay ROUTER bound at ${publisher.replayEndpoint}` : ''}\n`
    : '';
  const handle = sim;
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    handle.close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`vllm-sim: error while closing on ${signal}: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // Announced only once a signal would be handled: whoever waits for this line may stop it at once.
  process.stdout.write(`vllm-sim listening on ${sim.url}\n${kvLine}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`vllm-sim: fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
