import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { loadConfigFile } from './load.js';
import type { RouterConfig } from './schema.js';

export interface ConfigWatcherOptions {
  path: string;
  /** Called with each new valid config, in order. Never called for an invalid file. */
  onConfig: (config: RouterConfig) => void;
  /** Called when a changed file is invalid; the last good config stays in force. */
  onError: (error: Error) => void;
  debounceMs?: number;
  /** The config already in force, so that saving the file unchanged is a no-op. */
  current?: RouterConfig;
}

/**
 * Watches a config file and reloads it on change. Editors replace files by rename, so the
 * directory is watched rather than the file's inode.
 */
export function watchConfigFile(options: ConfigWatcherOptions): { close(): void; reload(): Promise<void> } {
  const { path, onConfig, onError, debounceMs = 100 } = options;
  let timer: NodeJS.Timeout | undefined;
  let lastText = options.current ? JSON.stringify(options.current) : undefined;
  let chain = Promise.resolve();

  const reload = (): Promise<void> => {
    chain = chain.then(async () => {
      try {
        const config = await loadConfigFile(path);
        const text = JSON.stringify(config);
        if (text === lastText) return;
        lastText = text;
        onConfig(config);
      } catch (err) {
        onError(err as Error);
      }
    });
    return chain;
  };

  const watcher: FSWatcher = watch(dirname(path), (_event, file) => {
    if (file !== null && file !== basename(path)) return;
    clearTimeout(timer);
    timer = setTimeout(() => void reload(), debounceMs);
  });
  watcher.on('error', onError);

  return {
    close() {
      clearTimeout(timer);
      watcher.close();
    },
    reload,
  };
}
