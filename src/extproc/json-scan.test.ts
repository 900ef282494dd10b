import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { JsonSyntaxError, scanJson } from './json-scan.js';

const scan = (text: string) => scanJson(Buffer.from(text));
const valid = (text: string) => {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
};

describe('JSON scanner', () => {
  it('gives the byte span of each top-level member', () => {
    const text = '{ "model" : "m", "n": [1, {"model": 2}], "s": "a\\"b", "e": {} }';
    const { root, members } = scan(text);
    expect(root).toBe('object');
    const at = (k: string) => text.slice(members.get(k)!.start, members.get(k)!.end);
    expect([at('model'), at('n'), at('s'), at('e')]).toEqual(['"m"', '[1, {"model": 2}]', '"a\\"b"', '{}']);
  });

  it.each([
    ['{', 'unexpected end of input'],
    ['{"a" 1}', "expected ':'"],
    ['{"a":1,}', 'expected a property name'],
    ['[1,]', 'unexpected character'],
    ['{"a":tru}', 'invalid literal'],
    ['{"a":01}', "expected ',' or '}'"],
    ['{"a":1.}', 'invalid number'],
    ['{"a":"x}', 'unterminated string'],
    ['{"a":"x\\"}', 'unterminated string'],
    ['{} {}', 'unexpected data after the JSON value'],
    ['', 'unexpected end of input'],
    ['[1 2]', "expected ',' or ']'"],
  ])('rejects %j: %s', (text, message) => {
    expect(() => scan(text)).toThrow(JsonSyntaxError);
    expect(() => scan(text)).toThrow(message);
  });

  it('accepts exactly what JSON.parse accepts, for structure (property test)', () => {
    const anyText = fc.oneof(
      fc.json({ depthSize: 'medium' }),
      fc.json().map((j) => j.slice(0, Math.max(0, j.length - 1))),
      fc.json().chain((j) => fc.nat(j.length).map((n) => j.slice(0, n) + j.slice(n + 1))),
      fc.string({ unit: fc.constantFrom('{', '}', '[', ']', '"', ':', ',', '1', '-', '.', 'e', 't', 'n', ' ', '\\') }),
    );
    fc.assert(
      fc.property(anyText, (text) => {
        let ours = true;
        try {
          scan(text);
        } catch (err) {
          expect(err).toBeInstanceOf(JsonSyntaxError);
          ours = false;
        }
        // String contents are the backend's to judge: the only disagreement allowed is a
        // malformed escape or control character inside a string the scanner accepted.
        if (ours !== valid(text)) expect(ours && /\\|[\u0000-\u001f]/.test(text)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('finds the same members as JSON.parse on any object (property test)', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 3 })), fc.boolean(), (object, indent) => {
        const text = JSON.stringify(object, null, indent ? 1 : undefined);
        const parsed = JSON.parse(text) as Record<string, unknown>;
        const { members } = scan(text);
        expect([...members.keys()].sort()).toEqual(Object.keys(parsed).sort());
        for (const [key, span] of members) expect(JSON.parse(text.slice(span.start, span.end))).toEqual(parsed[key]);
      }),
      { numRuns: 500 },
    );
  });

  it('scans deep nesting without recursion', () => {
    expect(scan('['.repeat(200_000) + ']'.repeat(200_000)).root).toBe('array');
  });
});
