// Bundles the compiled CLI (dist/main.js and everything it imports) into one
// file, dist/cirrus.mjs, which bin/cirrus.js runs. Why: each `cirrus` call is
// a fresh process, and resolving and loading a few hundred separate modules
// costs more than the call itself; one pre-linked file starts in about half
// the time (bench/cli measures it against `node -e ''`).
import { build } from "esbuild";

await build({
  entryPoints: ["dist/main.js"],
  outfile: "dist/cirrus.mjs",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  // Less to read and compile at every start (about 20 ms here); names are kept for error messages.
  minify: true,
  keepNames: true,
  logLevel: "warning",
  // Bundled CommonJS packages (grpc-js, commander…) call require().
  banner: { js: "import { createRequire as __cirrusRequire } from 'node:module'; const require = __cirrusRequire(import.meta.url);" },
});
