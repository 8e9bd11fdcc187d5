// The CLI as a library: `run` for embedding and tests, plus the parsers.
export { run, type Io, type RunOptions } from "./cli.js";
export { ExitCode } from "./errors.js";
export { parseShorthand, parseShorthandList } from "./shorthand.js";
export { parseCount } from "./params.js";
