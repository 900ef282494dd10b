import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../../src/launcher/envoy.js';

/**
 * The architecture, checked: the README's Layout section describes it, these tests keep it
 * from drifting. Generated code (src/gen) and tests are left out of the graph.
 */
const SRC = join(REPO, 'src');

function sourceFiles(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return path === join(SRC, 'gen') ? [] : sourceFiles(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

interface Import {
  from: string;
  /** Repo-relative path of the imported file (.ts), or the bare specifier of a package. */
  target: string;
  typeOnly: boolean;
}

function importsOf(file: string): Import[] {
  const text = readFileSync(file, 'utf8');
  const out: Import[] = [];
  const statements = /(?:^|\n)\s*(import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?'([^']+)'/g;
  const dynamic = /import\(\s*'([^']+)'\s*\)/g;
  const add = (spec: string, typeOnly: boolean) => {
    const target = spec.startsWith('.') ? relative(REPO, normalize(join(dirname(file), spec))).replace(/\.js$/, '.ts') : spec;
    out.push({ from: relative(REPO, file), target, typeOnly });
  };
  for (const m of text.matchAll(statements)) add(m[3]!, m[2] !== undefined);
  for (const m of text.matchAll(dynamic)) add(m[1]!, false);
  return out;
}

/** `src/fleet/discovery/dns.ts` -> `fleet`; files directly in src/ are the entry points, `(root)`. */
const folderOf = (path: string) => {
  const parts = relative('src', path).split(sep);
  return parts.length > 1 ? parts[0]! : '(root)';
};

const hand = sourceFiles().filter((f) => !f.endsWith('.test.ts'));
const imports = hand.flatMap(importsOf).filter((i) => i.target.startsWith('src/') && !i.target.startsWith('src/gen/'));

describe('architecture', () => {
  it('has no import cycle between the folders of src/', () => {
    const edges = new Map<string, Set<string>>();
    for (const i of imports) {
      const [a, b] = [folderOf(i.from), folderOf(i.target)];
      if (a === b) continue;
      if (!edges.has(a)) edges.set(a, new Set());
      edges.get(a)!.add(b);
    }
    const cycles: string[] = [];
    const visit = (node: string, path: string[]) => {
      if (path.includes(node)) return void cycles.push([...path.slice(path.indexOf(node)), node].join(' -> '));
      for (const next of edges.get(node) ?? []) visit(next, [...path, node]);
    };
    for (const node of edges.keys()) visit(node, []);
    expect(cycles).toEqual([]);
  });

  it('keeps scheduling/ a pure core: from outside it, only types and the fleet data model', () => {
    const PURE_OUTSIDE = new Set(['src/fleet/backend.ts']);
    const impure = hand
      .filter((f) => folderOf(relative(REPO, f)) === 'scheduling')
      .flatMap(importsOf)
      .filter((i) => !i.typeOnly && !i.target.startsWith('src/scheduling/') && !PURE_OUTSIDE.has(i.target))
      .map((i) => `${i.from} imports ${i.target}`);
    expect(impure).toEqual([]);
  });

  it('has no hand-written file over 300 lines outside the simulator', () => {
    const long = sourceFiles()
      .filter((f) => !f.startsWith(join(SRC, 'simulator')))
      .map((f) => ({ file: relative(REPO, f), lines: readFileSync(f, 'utf8').split('\n').length - 1 }))
      .filter((f) => f.lines > 300);
    expect(long).toEqual([]);
  });
});
