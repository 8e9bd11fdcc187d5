#!/usr/bin/env node
// The `cirrus` command: runs the TypeScript sources directly through tsx, so
// there is no build step between `npm ci` and a working CLI.
import { register } from "tsx/esm/api";

register();
await import("../src/main.ts");
