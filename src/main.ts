#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { ConfigError, loadConfigFile } from './config/load.js';
import { watchConfigFile } from './config/watch.js';
import { createLogger, type LogLevel } from './support/log.js';
import { startRouter, VERSION } from './router.js';

const USAGE = `usage: vllm-router --config router.yaml [--log-level debug|info|warn|error]

Envoy ext_proc + xDS control plane that makes many vLLM servers look like one.
The config file is watched: edits apply without a restart; an invalid edit is rejected and
the last good config keeps serving.`;

async function main(): Promise<void> {
  let values: { config?: string; 'log-level'?: string; help?: boolean; version?: boolean };
  try {
    ({ values } = parseArgs({
      options: {
        config: { type: 'string', short: 'c' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    }));
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (values.help) return void console.log(USAGE);
  if (values.version) return void console.log(VERSION);
  if (!values.config) {
    console.error(`--config is required\n\n${USAGE}`);
    process.exit(2);
  }
  const level = (values['log-level'] ?? process.env.LOG_LEVEL ?? 'info') as LogLevel;
  if (!['debug', 'info', 'warn', 'error'].includes(level)) {
    console.error(`--log-level must be one of debug, info, warn, error (got '${level}')`);
    process.exit(2);
  }
  const logger = createLogger(level);
  const path = values.config;

  let config;
  try {
    config = await loadConfigFile(path);
  } catch (err) {
    console.error(err instanceof ConfigError ? err.message : String(err));
    process.exit(2);
  }
  const router = await startRouter(config, logger).catch((err: Error) => {
    console.error(err.message);
    process.exit(1);
  });
  const watcher = watchConfigFile({
    path,
    current: config,
    onConfig: (next) => router.applyConfig(next),
    onError: (err) => logger.error('config reload rejected; keeping the last good config', { error: err.message }),
  });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('shutting down', { signal });
    watcher.close();
    await router.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

void main();
