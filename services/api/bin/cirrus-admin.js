#!/usr/bin/env node
// The `cirrus-admin` command: the compiled src/admin.ts (`npm run build`).
await import("../dist/admin.js");
