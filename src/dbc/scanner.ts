/**
 * A character scanner for DBC text: identifiers, numbers, quoted strings and punctuation, with the
 * line number kept for every error ("file:line: expected X, got Y"). Pure: text in, values out.
 */

export class DbcParseError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly detail: string,
  ) {
    super(`${file}:${line}: ${detail}`);
    this.name = "DbcParseError";
  }
}

const NUMBER = /[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?/y;
const INTEGER = /[-+]?\d+/y;
const IDENT = /[A-Za-z_][A-Za-z0-9_]*/y;
/** Message, signal and node names: real files (opendbc) start some with digits ("64_BIT_LE"). */
const NAME = /[A-Za-z0-9_]+/y;
const WORD = /[^\s,;:|@()[\]"]+/y;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a || c === 0x0c || c === 0xfeff;
}
function isWordChar(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f || c === 0x2e;
}

export class Scanner {
  pos = 0;
  line = 1;

  constructor(
    readonly src: string,
    readonly file: string,
  ) {}

  eof(): boolean {
    return this.pos >= this.src.length;
  }

  /** Skips whitespace (newlines too) and `//` comments. */
  skipWs(): void {
    const s = this.src;
    while (this.pos < s.length) {
      const c = s.charCodeAt(this.pos);
      if (c === 0x0a) {
        this.line++;
        this.pos++;
      } else if (isSpace(c)) {
        this.pos++;
      } else if (c === 0x2f && s.charCodeAt(this.pos + 1) === 0x2f) {
        while (this.pos < s.length && s.charCodeAt(this.pos) !== 0x0a) this.pos++;
      } else {
        return;
      }
    }
  }

  /** Skips spaces and tabs on the current line; true when the line (or the file) ends here. */
  atLineEnd(): boolean {
    const s = this.src;
    while (this.pos < s.length) {
      const c = s.charCodeAt(this.pos);
      if (c === 0x20 || c === 0x09 || c === 0x0d) this.pos++;
      else return c === 0x0a;
    }
    return true;
  }

  /** Skips to the start of the next line. */
  skipLine(): void {
    const s = this.src;
    while (this.pos < s.length && s.charCodeAt(this.pos) !== 0x0a) this.pos++;
    if (this.pos < s.length) {
      this.pos++;
      this.line++;
    }
  }

  peek(): string {
    this.skipWs();
    return this.src[this.pos] ?? "";
  }

  /** What stands at the cursor, for an error message. */
  describe(): string {
    this.skipWs();
    if (this.eof()) return "end of file";
    if (this.src[this.pos] === '"') return `'${this.src.slice(this.pos, this.pos + 24).split("\n")[0]}'`;
    WORD.lastIndex = this.pos;
    const m = WORD.exec(this.src);
    return `'${m !== null ? m[0].slice(0, 40) : this.src[this.pos]}'`;
  }

  fail(expected: string): never {
    const got = this.describe();
    throw new DbcParseError(this.file, this.eof() ? this.lastContentLine() : this.line, `expected ${expected}, got ${got}`);
  }

  /** At the end of the file: the line of its last non-blank character (where the text stopped). */
  private lastContentLine(): number {
    const t = this.src.trimEnd();
    let n = 1;
    for (let i = 0; i < t.length; i++) if (t.charCodeAt(i) === 0x0a) n++;
    return n;
  }

  error(line: number, detail: string): never {
    throw new DbcParseError(this.file, line, detail);
  }

  tryIdent(): string | null {
    this.skipWs();
    IDENT.lastIndex = this.pos;
    const m = IDENT.exec(this.src);
    if (m === null) return null;
    this.pos += m[0].length;
    return m[0];
  }

  /** A message/signal/node name (may start with a digit). */
  name(what: string): string {
    this.skipWs();
    NAME.lastIndex = this.pos;
    const m = NAME.exec(this.src);
    if (m === null) this.fail(what);
    this.pos += m[0].length;
    return m[0];
  }

  ident(what: string): string {
    const id = this.tryIdent();
    if (id === null) this.fail(what);
    return id;
  }

  private numberWith(re: RegExp, what: string, allowHuge = false): number {
    this.skipWs();
    re.lastIndex = this.pos;
    const m = re.exec(this.src);
    // "12abc" or "1.2.3" is a bad number, not a number followed by something.
    if (m === null || isWordChar(this.src.charCodeAt(this.pos + m[0].length))) this.fail(what);
    const v = Number(m[0]);
    // Some generators write limits beyond a double (canmatrix's j1939.dbc: 4.4E+481): ±Infinity.
    if (!Number.isFinite(v) && !allowHuge) this.fail(what);
    this.pos += m[0].length;
    return v;
  }

  number(what: string): number {
    return this.numberWith(NUMBER, what);
  }

  /** A number that may overflow a double (signal limits): read as ±Infinity. */
  limit(what: string): number {
    return this.numberWith(NUMBER, what, true);
  }

  integer(what: string): number {
    return this.numberWith(INTEGER, what);
  }

  isNumberNext(): boolean {
    this.skipWs();
    NUMBER.lastIndex = this.pos;
    return NUMBER.exec(this.src) !== null;
  }

  /** A double-quoted string (may span lines; `\"` and `\\` escape). */
  string(what: string): string {
    this.skipWs();
    if (this.src[this.pos] !== '"') this.fail(what);
    const startLine = this.line;
    const s = this.src;
    let out = "";
    let i = this.pos + 1;
    let from = i;
    for (;;) {
      if (i >= s.length) this.error(startLine, `unterminated string (${what}) starting here: expected a closing '"' before the end of the file`);
      const c = s.charCodeAt(i);
      if (c === 0x22) break;
      if (c === 0x5c && (s[i + 1] === '"' || s[i + 1] === "\\")) {
        out += s.slice(from, i);
        from = i + 1;
        i += 2;
        continue;
      }
      if (c === 0x0a) this.line++;
      i++;
    }
    out += s.slice(from, i);
    this.pos = i + 1;
    return out;
  }

  tryPunct(ch: string): boolean {
    this.skipWs();
    if (this.src[this.pos] !== ch) return false;
    this.pos++;
    return true;
  }

  punct(ch: string, context: string): void {
    if (!this.tryPunct(ch)) this.fail(`'${ch}' ${context}`);
  }

  /** One character from `allowed`, right at the cursor (no whitespace skipped). */
  charOf(allowed: string, what: string): string {
    const c = this.src[this.pos] ?? "";
    if (c === "" || !allowed.includes(c)) throw new DbcParseError(this.file, this.line, `expected ${what}, got ${c === "" ? "end of file" : `'${c}'`}`);
    this.pos++;
    return c;
  }

  /** Skips to just past the next `;` outside strings (statements we read but do not use). */
  skipStatement(keyword: string, startLine: number): void {
    const s = this.src;
    while (this.pos < s.length) {
      const c = s.charCodeAt(this.pos);
      if (c === 0x3b) {
        this.pos++;
        return;
      }
      if (c === 0x22) {
        this.string(`in ${keyword}`);
        continue;
      }
      if (c === 0x0a) this.line++;
      this.pos++;
    }
    this.error(startLine, `expected ';' ending the ${keyword} statement started here, got end of file`);
  }

  /** The raw text up to the next `;` (consumed), for statements with their own micro-syntax. */
  untilSemicolon(keyword: string, startLine: number): string {
    const from = this.pos;
    const end = this.src.indexOf(";", from);
    if (end < 0) this.error(startLine, `expected ';' ending the ${keyword} statement started here, got end of file`);
    const text = this.src.slice(from, end);
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 0x0a) this.line++;
    this.pos = end + 1;
    return text;
  }
}
