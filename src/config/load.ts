import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { routerConfigSchema, type RouterConfig } from './schema.js';

/** A config that could not be used, with one line per problem, each naming the field. */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid config ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out || '(top level)';
}

/** Validates an already-parsed object. Throws ConfigError naming every bad field. */
export function parseConfig(raw: unknown, source = 'config'): RouterConfig {
  const result = routerConfigSchema.safeParse(raw ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const where = fieldPath(issue.path);
    if (issue.code === 'unrecognized_keys') {
      return `${where}: unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')}`;
    }
    return `${where}: ${issue.message}`;
  });
  throw new ConfigError(source, problems);
}

/** Parses YAML text (JSON is YAML too) and validates it. */
export function parseConfigText(text: string, source = 'config'): RouterConfig {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      source,
      doc.errors.map((e) => `YAML ${e.code} at line ${e.linePos?.[0]?.line ?? '?'}: ${e.message.split('\n')[0]}`),
    );
  }
  return parseConfig(doc.toJS(), source);
}

/**
 * Reads the router's config file. A file that names no backend and no discovery source is
 * refused like any invalid one: it could route nothing, and it is what an editor or `cp`
 * leaves for a moment (an empty or truncated file), so applying it would turn every request
 * into a 404 until the next write.
 */
export async function loadConfigFile(path: string): Promise<RouterConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [`cannot read file: ${(err as Error).message}`]);
  }
  const config = parseConfigText(text, path);
  // Tokenizer directories are read relative to the config file, wherever the router starts.
  for (const [model, dir] of Object.entries(config.tokenizers)) config.tokenizers[model] = resolve(dirname(path), dir);
  const { dns, kubernetes } = config.discovery;
  if (config.backends.length === 0 && dns.length === 0 && kubernetes.length === 0) {
    const what = text.trim() === '' ? 'the file is empty' : 'it names no backends and no discovery (dns, kubernetes)';
    throw new ConfigError(path, [`backends: ${what}; a router needs at least one backend or discovery source (a file being written, empty or truncated, looks like this)`]);
  }
  return config;
}
