// The aws CLI's "shorthand syntax" for structured parameters, plus the JSON
// alternative it also accepts. Grammar (the subset of awscli/shorthand.py that
// EC2 parameters use):
//
//   structure   = keyval *("," keyval)
//   keyval      = key "=" [values]
//   values      = csv-values / explicit-list / hash-literal
//   csv-values  = value *("," value)       ; stops before a "," that starts a new `key=`
//   explicit-list = "[" [element *("," element)] "]"   ; elements: value / list / hash
//   hash-literal  = "{" keyval *("," keyval) "}"
//   value       = 'single quoted' / "double quoted" / unquoted ; "\" escapes the next char
//
// Values are always strings here; turning "1" into a number or "true" into a
// boolean is the request builder's job, because only the message shape knows
// which it should be (a tag Value of "007" must stay a string).

/** A parsed shorthand value: a string, a list of them, or a nested structure. */
export type ShorthandValue = string | ShorthandValue[] | { [key: string]: ShorthandValue };

/** A syntax error, with the offset at which the parser gave up (for the caret line). */
export class ShorthandSyntaxError extends Error {
  constructor(
    readonly expected: string,
    readonly received: string,
    readonly input: string,
    readonly index: number,
  ) {
    super(`Expected: '${expected}', received: '${received}' for input:\n${input}\n${" ".repeat(index)}^`);
    this.name = "ShorthandSyntaxError";
  }
}

// Keys are identifiers, so a "," followed by one of these and "=" starts a new
// keyval rather than another value of a comma-separated list.
const KEY = /[A-Za-z0-9_.#/:-]+/y;
const NEXT_KEYVAL = /\s*[A-Za-z0-9_.#/:-]+\s*=/y;

/** Where a value sits decides which characters end it. */
type Context = "top" | "list" | "hash";
const TERMINATORS: Record<Context, string> = { top: ",", list: ",]", hash: ",}" };

class Parser {
  private i = 0;

  constructor(private readonly s: string) {}

  /** `Key=Value,...` → object. */
  structure(): Record<string, ShorthandValue> {
    const obj = this.keyvals("top");
    this.expectEnd();
    return obj;
  }

  /** `a,b,'c,d'` → list of strings (a top-level list of scalars). */
  scalarList(): string[] {
    const out: string[] = [];
    for (;;) {
      out.push(this.value("top"));
      if (!this.eat(",")) break;
    }
    this.expectEnd();
    return out;
  }

  private keyvals(ctx: Context): Record<string, ShorthandValue> {
    const obj: Record<string, ShorthandValue> = {};
    for (;;) {
      this.ws();
      const key = this.key();
      this.ws();
      this.expect("=");
      if (Object.hasOwn(obj, key)) throw new ShorthandSyntaxError("unique key", key, this.s, this.i);
      obj[key] = this.values(ctx);
      this.ws();
      if (!this.eat(",")) return obj;
    }
  }

  private values(ctx: Context): ShorthandValue {
    this.ws();
    if (this.peek() === "[") return this.explicitList();
    if (this.peek() === "{") return this.hash();
    const first = this.value(ctx);
    const list = [first];
    // `Values=a,b,c`: keep taking values while the next "," does not start a keyval.
    while (this.peek() === "," && !this.lookingAtKeyval(this.i + 1)) {
      this.i++;
      list.push(this.value(ctx));
    }
    return list.length === 1 ? first : list;
  }

  private explicitList(): ShorthandValue[] {
    this.expect("[");
    const out: ShorthandValue[] = [];
    this.ws();
    if (this.eat("]")) return out;
    for (;;) {
      this.ws();
      const c = this.peek();
      out.push(c === "[" ? this.explicitList() : c === "{" ? this.hash() : this.value("list"));
      this.ws();
      if (this.eat("]")) return out;
      this.expect(",");
    }
  }

  private hash(): Record<string, ShorthandValue> {
    this.expect("{");
    this.ws();
    if (this.eat("}")) return {};
    const obj = this.keyvals("hash");
    this.expect("}");
    return obj;
  }

  private value(ctx: Context): string {
    this.ws();
    const q = this.peek();
    if (q === "'" || q === '"') return this.quoted(q);
    const stop = TERMINATORS[ctx];
    let out = "";
    while (this.i < this.s.length && !stop.includes(this.s[this.i]!)) {
      if (this.s[this.i] === "\\" && this.i + 1 < this.s.length) this.i++;
      out += this.s[this.i++];
    }
    return out.trim();
  }

  private quoted(q: string): string {
    const start = this.i++;
    let out = "";
    while (this.i < this.s.length && this.s[this.i] !== q) {
      if (this.s[this.i] === "\\" && this.i + 1 < this.s.length) this.i++;
      out += this.s[this.i++];
    }
    if (this.i >= this.s.length) throw new ShorthandSyntaxError(q, "EOF", this.s, start);
    this.i++;
    this.ws();
    return out;
  }

  private key(): string {
    KEY.lastIndex = this.i;
    const m = KEY.exec(this.s);
    if (!m) throw new ShorthandSyntaxError("key", this.received(), this.s, this.i);
    this.i += m[0].length;
    return m[0];
  }

  private lookingAtKeyval(at: number): boolean {
    NEXT_KEYVAL.lastIndex = at;
    return NEXT_KEYVAL.test(this.s);
  }

  private ws(): void {
    while (this.i < this.s.length && /\s/.test(this.s[this.i]!)) this.i++;
  }

  private peek(): string | undefined {
    return this.s[this.i];
  }

  private eat(c: string): boolean {
    if (this.s[this.i] !== c) return false;
    this.i++;
    return true;
  }

  private expect(c: string): void {
    if (!this.eat(c)) throw new ShorthandSyntaxError(c, this.received(), this.s, this.i);
  }

  private expectEnd(): void {
    this.ws();
    if (this.i < this.s.length) throw new ShorthandSyntaxError("EOF", this.received(), this.s, this.i);
  }

  private received(): string {
    return this.i < this.s.length ? this.s[this.i]! : "EOF";
  }
}

/** Parses `Key=Value,Key2=[{...}]` into an object. Throws ShorthandSyntaxError. */
export function parseShorthand(input: string): Record<string, ShorthandValue> {
  return new Parser(input).structure();
}

/** Parses `a,b,"c,d"` into a list of strings. Throws ShorthandSyntaxError. */
export function parseShorthandList(input: string): string[] {
  return new Parser(input).scalarList();
}

/**
 * True when a parameter value is JSON rather than shorthand. The aws CLI uses
 * the same test: structured input starting with "{" or "[" is JSON.
 */
export function looksLikeJson(input: string): boolean {
  const c = input.trimStart()[0];
  return c === "{" || c === "[";
}
