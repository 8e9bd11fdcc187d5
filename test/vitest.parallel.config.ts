import { defineConfig } from "vitest/config";
import { e2eBase, WITHOUT_VMS } from "./vitest.config.js";

// The end-to-end files that boot no VM, two at a time (one per core).
export default defineConfig({
  ...e2eBase,
  test: {
    include: WITHOUT_VMS,
    fileParallelism: true,
    maxWorkers: 2,
    minWorkers: 1,
    testTimeout: 600_000,
    hookTimeout: 300_000,
  },
});
