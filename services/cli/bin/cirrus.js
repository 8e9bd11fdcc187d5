#!/usr/bin/env node
// The `cirrus` command: the compiled CLI, bundled into one file
// (`npm run build` makes dist/cirrus.mjs; scripts/bundle.mjs says why).
await import("../dist/cirrus.mjs");
