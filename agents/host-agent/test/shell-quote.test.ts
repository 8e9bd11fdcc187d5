import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { shellQuote } from "../src/runner/shell-quote.js";

const NASTY = [
  "plain",
  "",
  "with space",
  "  leading and trailing  ",
  "it's",
  "'",
  "''",
  "'\\''",
  '"double"',
  "$(touch /tmp/cirrus-pwned)",
  "`id`",
  "${HOME}",
  "$HOME",
  "a;b",
  "a|b",
  "a&b",
  "a&&b||c",
  "line1\nline2",
  "\n",
  "tab\there",
  "-n",
  "--help",
  "-",
  "*",
  "?",
  "[a-z]",
  "~",
  "~root",
  "#comment",
  "a > /tmp/cirrus-redirect",
  "< /etc/passwd",
  "\\",
  "back\\slash\\",
  "!bang",
  "{a,b}",
  "ünïcødé ✓",
  "\x01\x02\x7f",
];

/** Runs `sh -c <quoted>` where the quoted command prints each argument followed by a NUL byte. */
function roundTrip(shell: string, args: string[]): string[] {
  const out = execFileSync(shell, ["-c", shellQuote(["printf", "%s\\000", ...args])], { encoding: "buffer" });
  const parts = out.toString("utf8").split("\0");
  expect(parts.pop()).toBe(""); // trailing NUL
  return parts;
}

describe("shellQuote", () => {
  it("single-quotes every argument", () => {
    expect(shellQuote(["echo", "a b"])).toBe("'echo' 'a b'");
    expect(shellQuote([""])).toBe("''");
  });

  it("turns an embedded single quote into '\\''", () => {
    expect(shellQuote(["it's"])).toBe("'it'\\''s'");
  });

  it("rejects NUL bytes and an empty argv", () => {
    expect(() => shellQuote(["a\0b"])).toThrow(/NUL/);
    expect(() => shellQuote([])).toThrow(/empty/);
  });

  for (const shell of ["/bin/sh", "/bin/bash"].filter((s) => existsSync(s))) {
    it(`round-trips hostile arguments through ${shell} -c unchanged`, () => {
      expect(roundTrip(shell, NASTY)).toEqual(NASTY);
      expect(existsSync("/tmp/cirrus-pwned")).toBe(false);
      expect(existsSync("/tmp/cirrus-redirect")).toBe(false);
    });

    it(`keeps each argument whole through ${shell} (no word splitting or globbing)`, () => {
      for (const arg of NASTY) expect(roundTrip(shell, [arg])).toEqual([arg]);
    });
  }

  it("quotes the command name too, so a path with spaces runs as one word", () => {
    const out = execFileSync("/bin/sh", ["-c", shellQuote(["/bin/echo", "-n", "x y"])], { encoding: "utf8" });
    expect(out).toBe("x y");
  });
});
