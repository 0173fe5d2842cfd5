/**
 * Strict JSON for request bodies. `JSON.parse` lets the last of two duplicate keys win
 * (`{"decision":"approve","decision":"deny"}` denies) and Express's body parser quietly
 * drops a `__proto__` key. This parser follows the RFC 8259 grammar exactly, produces the
 * same value as `JSON.parse` for every text it accepts, and refuses, with the JSON path
 * of the offending member:
 *
 * - a duplicate key in any object, compared after unescaping (`"dec\u0069sion"` is `"decision"`);
 * - a key named `__proto__`, `constructor` or `prototype`, at any depth;
 * - nesting deeper than {@link MAX_DEPTH} arrays/objects.
 *
 * A syntax error anywhere in the text takes precedence over those refusals, so the result
 * is "malformed JSON" exactly when `JSON.parse` would throw. Runs in time linear in the
 * length of the text and never recurses more than {@link MAX_DEPTH} levels.
 */

export type StrictJsonResult = { ok: true; value: unknown } | { ok: false; path: string; message: string };

/** Arrays and objects may nest this many levels deep (the root container is level 1). */
export const MAX_DEPTH = 64;

const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);

type Segment = string | number;

/** `params.items[2].name`; the root is `""`. */
function formatPath(path: readonly Segment[]): string {
  let out = "";
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]!;
    if (typeof seg === "number") out += `[${seg}]`;
    else out += i === 0 ? seg : `.${seg}`;
  }
  return out;
}

/** Thrown internally on the first syntax error; never escapes {@link parseStrictJson}. */
class Malformed extends Error {}

// Character codes.
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const QUOTE = 0x22;
const PLUS = 0x2b;
const COMMA = 0x2c;
const MINUS = 0x2d;
const DOT = 0x2e;
const SLASH = 0x2f;
const ZERO = 0x30;
const ONE = 0x31;
const NINE = 0x39;
const COLON = 0x3a;
const UPPER_E = 0x45;
const LBRACKET = 0x5b;
const BACKSLASH = 0x5c;
const RBRACKET = 0x5d;
const LOWER_E = 0x65;
const LBRACE = 0x7b;
const RBRACE = 0x7d;

const SIMPLE_ESCAPES: Readonly<Record<number, string>> = {
  [QUOTE]: '"',
  [BACKSLASH]: "\\",
  [SLASH]: "/",
  98: "\b", // b
  102: "\f", // f
  110: "\n", // n
  114: "\r", // r
  116: "\t", // t
};

function hexValue(c: number): number {
  if (c >= ZERO && c <= NINE) return c - ZERO;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10; // A-F
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10; // a-f
  return -1;
}

function isDigit(c: number): boolean {
  return c >= ZERO && c <= NINE;
}

class Parser {
  private pos = 0;
  /** Current JSON path, as segments; formatted only when something is refused. */
  private readonly path: Segment[] = [];
  /** The first refusal in text order; parsing carries on so that a later syntax error still wins. */
  refusal: { path: string; message: string } | undefined;

  constructor(private readonly text: string) {}

  parseDocument(): unknown {
    this.skipWhitespace();
    const value = this.parseValue(0);
    this.skipWhitespace();
    if (this.pos !== this.text.length) throw new Malformed();
    return value;
  }

  private refuse(path: readonly Segment[], message: string): void {
    this.refusal ??= { path: formatPath(path), message };
  }

  private peek(): number {
    // NaN past the end, which equals no character code.
    return this.text.charCodeAt(this.pos);
  }

  private expect(c: number): void {
    if (this.text.charCodeAt(this.pos) !== c) throw new Malformed();
    this.pos++;
  }

  private skipWhitespace(): void {
    const t = this.text;
    let p = this.pos;
    for (;;) {
      const c = t.charCodeAt(p);
      if (c === SPACE || c === LF || c === CR || c === TAB) p++;
      else break;
    }
    this.pos = p;
  }

  /** A value at nesting level `depth` (the number of containers around it). */
  private parseValue(depth: number): unknown {
    const c = this.peek();
    if (c === LBRACE || c === LBRACKET) {
      if (depth >= MAX_DEPTH) {
        this.refuse(this.path, "nested too deeply");
        this.skipContainer();
        return undefined;
      }
      return c === LBRACE ? this.parseObject(depth + 1) : this.parseArray(depth + 1);
    }
    return this.parseScalar();
  }

  private parseScalar(): unknown {
    const c = this.peek();
    if (c === QUOTE) return this.parseString();
    if (c === MINUS || isDigit(c)) return this.parseNumber();
    if (this.text.startsWith("true", this.pos)) {
      this.pos += 4;
      return true;
    }
    if (this.text.startsWith("false", this.pos)) {
      this.pos += 5;
      return false;
    }
    if (this.text.startsWith("null", this.pos)) {
      this.pos += 4;
      return null;
    }
    throw new Malformed();
  }

  private parseObject(depth: number): Record<string, unknown> {
    this.pos++; // {
    // A plain object, as JSON.parse makes; members are defined, never assigned, so no key
    // can reach a setter on Object.prototype (and __proto__ is refused before this anyway).
    const obj: Record<string, unknown> = {};
    this.skipWhitespace();
    if (this.peek() === RBRACE) {
      this.pos++;
      return obj;
    }
    for (;;) {
      if (this.peek() !== QUOTE) throw new Malformed();
      const key = this.parseString();
      this.skipWhitespace();
      this.expect(COLON);
      this.skipWhitespace();
      this.path.push(key);
      let fresh = false;
      if (FORBIDDEN_KEYS.has(key)) this.refuse(this.path, `key ${JSON.stringify(key)} is not allowed`);
      else if (Object.hasOwn(obj, key)) this.refuse(this.path, `duplicate key ${JSON.stringify(key)}`);
      else fresh = true;
      const value = this.parseValue(depth);
      this.path.pop();
      if (fresh) Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
      this.skipWhitespace();
      const c = this.peek();
      this.pos++;
      if (c === RBRACE) return obj;
      if (c !== COMMA) throw new Malformed();
      this.skipWhitespace();
    }
  }

  private parseArray(depth: number): unknown[] {
    this.pos++; // [
    const arr: unknown[] = [];
    this.skipWhitespace();
    if (this.peek() === RBRACKET) {
      this.pos++;
      return arr;
    }
    for (;;) {
      this.path.push(arr.length);
      arr.push(this.parseValue(depth));
      this.path.pop();
      this.skipWhitespace();
      const c = this.peek();
      this.pos++;
      if (c === RBRACKET) return arr;
      if (c !== COMMA) throw new Malformed();
      this.skipWhitespace();
    }
  }

  /**
   * Checks the syntax of one array or object that is already too deep to keep, without
   * recursion (a 64 KB body can nest tens of thousands of levels) and without building it.
   */
  private skipContainer(): void {
    const open: number[] = []; // closing character of each open container
    for (;;) {
      // Expect a value.
      const c = this.peek();
      if (c === LBRACE || c === LBRACKET) {
        this.pos++;
        this.skipWhitespace();
        const close = c === LBRACE ? RBRACE : RBRACKET;
        if (this.peek() === close) {
          this.pos++;
        } else {
          open.push(close);
          if (close === RBRACE) this.skipKey();
          continue;
        }
      } else {
        this.parseScalar();
      }
      // After a value: close containers until a comma starts the next value.
      for (;;) {
        const close = open[open.length - 1];
        if (close === undefined) return;
        this.skipWhitespace();
        const d = this.peek();
        this.pos++;
        if (d === close) {
          open.pop();
          continue;
        }
        if (d !== COMMA) throw new Malformed();
        this.skipWhitespace();
        if (close === RBRACE) this.skipKey();
        break;
      }
    }
  }

  /** `"key" :` and the whitespace after it, inside a skipped object. */
  private skipKey(): void {
    if (this.peek() !== QUOTE) throw new Malformed();
    this.parseString();
    this.skipWhitespace();
    this.expect(COLON);
    this.skipWhitespace();
  }

  private parseString(): string {
    const t = this.text;
    let p = this.pos + 1; // after the opening quote
    let start = p;
    let parts: string[] | undefined;
    for (;;) {
      const c = t.charCodeAt(p);
      if (c === QUOTE) break;
      if (c === BACKSLASH) {
        parts ??= [];
        parts.push(t.slice(start, p));
        const e = t.charCodeAt(p + 1);
        if (e === 0x75) {
          // \uXXXX: one UTF-16 code unit. A surrogate pair is two escapes, so concatenating
          // the units reproduces the character; a lone surrogate is kept, as JSON.parse does.
          let unit = 0;
          for (let i = 2; i < 6; i++) {
            const h = hexValue(t.charCodeAt(p + i));
            if (h < 0) throw new Malformed();
            unit = unit * 16 + h;
          }
          parts.push(String.fromCharCode(unit));
          p += 6;
        } else {
          const s = SIMPLE_ESCAPES[e];
          if (s === undefined) throw new Malformed();
          parts.push(s);
          p += 2;
        }
        start = p;
        continue;
      }
      // Control characters must be escaped; NaN means the text ended inside the string.
      if (!(c >= SPACE)) throw new Malformed();
      p++;
    }
    this.pos = p + 1;
    if (!parts) return t.slice(start, p);
    parts.push(t.slice(start, p));
    return parts.join("");
  }

  /** `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, valued exactly as JSON.parse does. */
  private parseNumber(): number {
    const t = this.text;
    const start = this.pos;
    let p = start;
    if (t.charCodeAt(p) === MINUS) p++;
    const first = t.charCodeAt(p);
    if (first === ZERO) p++;
    else if (first >= ONE && first <= NINE) while (isDigit(t.charCodeAt(p))) p++;
    else throw new Malformed();
    if (t.charCodeAt(p) === DOT) {
      p++;
      if (!isDigit(t.charCodeAt(p))) throw new Malformed();
      while (isDigit(t.charCodeAt(p))) p++;
    }
    const e = t.charCodeAt(p);
    if (e === LOWER_E || e === UPPER_E) {
      p++;
      const sign = t.charCodeAt(p);
      if (sign === PLUS || sign === MINUS) p++;
      if (!isDigit(t.charCodeAt(p))) throw new Malformed();
      while (isDigit(t.charCodeAt(p))) p++;
    }
    this.pos = p;
    // The slice is a valid StrDecimalLiteral, which Number() rounds the same way JSON.parse does.
    return Number(t.slice(start, p));
  }
}

/** Parses a JSON text, refusing duplicate keys, prototype-named keys and deep nesting. Never throws. */
export function parseStrictJson(text: string): StrictJsonResult {
  const parser = new Parser(text);
  let value: unknown;
  try {
    value = parser.parseDocument();
  } catch (e) {
    if (e instanceof Malformed) return { ok: false, path: "", message: "malformed JSON" };
    throw e;
  }
  if (parser.refusal) return { ok: false, ...parser.refusal };
  return { ok: true, value };
}

// An RFC 9110 token, matched in place (sticky) so the scan stays linear.
const TOKEN = /[!#$%&'*+\-.^_`|~0-9A-Za-z]+/y;

/**
 * Whether a Content-Type allows only UTF-8: true when it has no charset parameter or
 * every charset parameter is utf-8 / utf8 (any case, quoted or not). False for any other
 * charset, and for parameters that cannot be parsed (RFC 9110 grammar), since then the
 * charset cannot be known.
 */
export function isUtf8Charset(contentType: string | undefined): boolean {
  if (contentType === undefined) return true;
  const s = contentType;
  let i = s.indexOf(";");
  if (i < 0) return true;
  const ows = () => {
    while (s[i] === " " || s[i] === "\t") i++;
  };
  const token = (): string | undefined => {
    TOKEN.lastIndex = i;
    const m = TOKEN.exec(s)?.[0];
    if (m) i += m.length;
    return m;
  };
  while (i < s.length) {
    i++; // past ";"
    ows();
    if (i >= s.length) break;
    if (s[i] === ";") continue; // empty parameter
    const name = token();
    if (!name) return false;
    if (s[i] !== "=") return false;
    i++;
    let value: string;
    if (s[i] === '"') {
      i++;
      value = "";
      for (;;) {
        if (i >= s.length) return false; // unterminated quoted-string
        let ch = s[i]!;
        if (ch === '"') break;
        if (ch === "\\") {
          i++;
          if (i >= s.length) return false;
          ch = s[i]!;
        }
        value += ch;
        i++;
      }
      i++; // closing quote
    } else {
      const t = token();
      if (!t) return false;
      value = t;
    }
    ows();
    if (i < s.length && s[i] !== ";") return false;
    if (name.toLowerCase() === "charset") {
      const cs = value.toLowerCase();
      if (cs !== "utf-8" && cs !== "utf8") return false;
    }
  }
  return true;
}
