#!/usr/bin/env node
// The `cirrus` command: the compiled CLI (`npm run build` makes dist/).
await import("../dist/main.js");
