import { loadModelTokenizer, type ModelTokenizer } from './model-tokenizer.js';

export interface TokenizerSet {
  /** The tokenizer of a served model name, if the config names one. */
  forModel(model: string): ModelTokenizer | undefined;
  readonly byDir: ReadonlyMap<string, ModelTokenizer>;
  /** Per model: where its tokenizer is from, whether prompts are encoded piecewise (between added tokens, and cut between words), its cache's figures. */
  stats(): Record<string, { dir: string; segmented: boolean; chunked: boolean; cache: ReturnType<ModelTokenizer['cacheStats']> }>;
}

/**
 * Loads the tokenizers a config names (model name -> model directory). Directories already
 * loaded by `previous` are reused with their caches, so a reload does not start cold. Throws
 * TokenizerLoadError naming the directory and the file at fault.
 */
export function loadTokenizerSet(spec: Readonly<Record<string, string>>, previous?: TokenizerSet): TokenizerSet {
  const byDir = new Map<string, ModelTokenizer>();
  const byModel = new Map<string, ModelTokenizer>();
  for (const [model, dir] of Object.entries(spec)) {
    let tokenizer = byDir.get(dir) ?? previous?.byDir.get(dir);
    tokenizer ??= loadModelTokenizer(dir);
    byDir.set(dir, tokenizer);
    byModel.set(model, tokenizer);
  }
  return {
    forModel: (model) => byModel.get(model),
    byDir,
    stats: () => Object.fromEntries([...byModel].map(([model, t]) => [model, { dir: t.dir, segmented: t.segmented, chunked: t.chunked, cache: t.cacheStats() }])),
  };
}
