import { defineConfig, mergeConfig } from "vitest/config";
import base from "./vitest.config.js";

// `npm run test:unit`: the pure tests, which need no root, libvirt, network
// or database: everything but *.integration.test.ts (root, libvirt, QEMU,
// namespaces, sshd) and *.pg.test.ts (a Postgres server). `npm test` runs
// all of them, then the end-to-end suite.
export default mergeConfig(base, defineConfig({
  test: { exclude: ["**/node_modules/**", "**/*.integration.test.ts", "**/*.pg.test.ts"] },
}));
