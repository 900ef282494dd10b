/**
 * A structural JSON scanner over raw bytes: checks that a body is one well-formed JSON value
 * and reports where each member of the top-level object lies, without building strings or
 * objects. Routing needs a few small fields and the byte range of the prompt; JSON.parse of a
 * several-MiB prompt would first decode and copy all of it.
 *
 * String contents are skipped with a native byte search for the closing quote; escape
 * sequences and control characters inside strings are left for the backend to judge, like
 * every field the router does not read.
 */

/** Byte offsets `[start, end)` of one JSON value. */
export interface Span {
  start: number;
  end: number;
}

export class JsonSyntaxError extends SyntaxError {
  constructor(
    message: string,
    readonly at: number,
  ) {
    super(`${message} at byte ${at}`);
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const MINUS = 0x2d;
const OBJECT = 0;
const ARRAY = 1;

/** An error at `i`, or "unexpected end of input" when the body stops there. */
const expected = (buf: Uint8Array, i: number, what: string) => new JsonSyntaxError(i >= buf.length ? 'unexpected end of input' : what, i);

const isDigit = (c: number | undefined) => c !== undefined && c >= 0x30 && c <= 0x39;

export function skipWhitespace(buf: Uint8Array, i: number): number {
  for (;;) {
    const c = buf[i];
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return i;
    i++;
  }
}

/** `i` at an opening quote; returns the index just past the closing one. */
export function skipString(buf: Buffer, i: number): number {
  let from = i + 1;
  for (;;) {
    const quote = buf.indexOf(QUOTE, from);
    if (quote === -1) throw new JsonSyntaxError('unterminated string', i);
    let k = quote - 1;
    while (buf[k] === BACKSLASH) k--;
    // An even run of backslashes escapes itself, not the quote.
    if ((quote - 1 - k) % 2 === 0) return quote + 1;
    from = quote + 1;
  }
}

function skipNumber(buf: Uint8Array, i: number): number {
  const start = i;
  if (buf[i] === MINUS) i++;
  if (buf[i] === 0x30) i++;
  else if (isDigit(buf[i])) while (isDigit(buf[i])) i++;
  else throw new JsonSyntaxError('invalid number', start);
  if (buf[i] === 0x2e) {
    i++;
    if (!isDigit(buf[i])) throw new JsonSyntaxError('invalid number', start);
    while (isDigit(buf[i])) i++;
  }
  if (buf[i] === 0x65 || buf[i] === 0x45) {
    i++;
    if (buf[i] === 0x2b || buf[i] === MINUS) i++;
    if (!isDigit(buf[i])) throw new JsonSyntaxError('invalid number', start);
    while (isDigit(buf[i])) i++;
  }
  return i;
}

const LITERALS: ReadonlyArray<readonly [number, Uint8Array]> = ['true', 'false', 'null'].map((w) => [w.charCodeAt(0), Buffer.from(w)] as const);

function skipLiteral(buf: Uint8Array, i: number): number {
  for (const [first, word] of LITERALS) {
    if (buf[i] !== first) continue;
    for (let k = 1; k < word.length; k++) if (buf[i + k] !== word[k]) throw new JsonSyntaxError('invalid literal', i);
    return i + word.length;
  }
  throw expected(buf, i, 'unexpected character');
}

export interface ScannedJson {
  /** What the document is: only an object has members. */
  root: 'object' | 'array' | 'scalar';
  /** Members of the top-level object, by raw key bytes decoded as UTF-8 (a later duplicate wins, as in JSON.parse). */
  members: Map<string, Span>;
}

/** Scans `buf` as one JSON document; throws JsonSyntaxError where it is malformed. */
export function scanJson(buf: Buffer): ScannedJson {
  const members = new Map<string, Span>();
  const stack: number[] = [];
  let i = skipWhitespace(buf, 0);
  const first = buf[i];
  const root = first === OPEN_OBJECT ? 'object' : first === OPEN_ARRAY ? 'array' : 'scalar';
  let expectKey = false;
  let key = '';
  let valueStart = 0;
  for (;;) {
    i = skipWhitespace(buf, i);
    if (expectKey) {
      if (buf[i] !== QUOTE) throw expected(buf, i, 'expected a property name');
      const keyStart = i;
      const keyEnd = skipString(buf, i);
      i = skipWhitespace(buf, keyEnd);
      if (buf[i] !== COLON) throw expected(buf, i, "expected ':'");
      if (stack.length === 1) {
        key = stringText(buf, keyStart, keyEnd);
        valueStart = skipWhitespace(buf, i + 1);
      }
      i++;
      expectKey = false;
      continue;
    }
    // One value starts at i.
    const c = buf[i];
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      const close = c === OPEN_OBJECT ? CLOSE_OBJECT : CLOSE_ARRAY;
      stack.push(c === OPEN_OBJECT ? OBJECT : ARRAY);
      i = skipWhitespace(buf, i + 1);
      if (buf[i] !== close) {
        expectKey = c === OPEN_OBJECT;
        continue;
      }
      stack.pop();
      i++;
    } else if (c === QUOTE) i = skipString(buf, i);
    else if (c === MINUS || isDigit(c)) i = skipNumber(buf, i);
    else i = skipLiteral(buf, i);
    // A value ended at i; close every container it completes.
    for (;;) {
      if (stack.length === 0) {
        i = skipWhitespace(buf, i);
        if (i !== buf.length) throw new JsonSyntaxError('unexpected data after the JSON value', i);
        return { root, members };
      }
      if (stack.length === 1 && stack[0] === OBJECT) members.set(key, { start: valueStart, end: i });
      i = skipWhitespace(buf, i);
      const inObject = stack[stack.length - 1] === OBJECT;
      if (buf[i] === COMMA) {
        i++;
        expectKey = inObject;
        break;
      }
      if (buf[i] !== (inObject ? CLOSE_OBJECT : CLOSE_ARRAY)) {
        throw expected(buf, i, inObject ? "expected ',' or '}'" : "expected ',' or ']'");
      }
      stack.pop();
      i++;
    }
  }
}

/**
 * The text of the JSON string spanning `[start, end)` (quotes included). Escaped strings (rare
 * in the fields read) go through JSON.parse, so `"mod\u0065l"` is `model`.
 */
export function stringText(buf: Buffer, start: number, end: number): string {
  if (!buf.subarray(start, end).includes(BACKSLASH)) return buf.toString('utf8', start + 1, end - 1);
  try {
    return JSON.parse(buf.toString('utf8', start, end)) as string;
  } catch {
    throw new JsonSyntaxError('invalid escape in a string', start);
  }
}
