// The one place where an argv array becomes a shell command line: SSH's exec
// request carries a single string that the remote login shell parses.

/**
 * Quotes argv for a POSIX shell: each argument is wrapped in single quotes
 * (inside which nothing is special) and each embedded single quote becomes
 * '\'' . Postcondition: `sh -c "$(shellQuote(argv))"` runs argv[0] with
 * exactly argv[1..] as its arguments, byte for byte.
 * Throws on an empty argv or an argument containing a NUL byte (a C string
 * cannot carry it, so it would be silently truncated).
 */
export function shellQuote(argv: readonly string[]): string {
  if (argv.length === 0) throw new Error("shellQuote: empty argv");
  return argv
    .map((arg) => {
      if (arg.includes("\0")) throw new Error("shellQuote: argument contains a NUL byte");
      return `'${arg.replaceAll("'", `'\\''`)}'`;
    })
    .join(" ");
}
