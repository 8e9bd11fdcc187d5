import { defineConfig } from "vitest/config";

// End-to-end files boot real VMs on a 2-core machine: run them one at a time.
export default defineConfig({
  resolve: { conditions: ["cirrus-source"] },
  ssr: { resolve: { conditions: ["cirrus-source"] } },
  test: {
    include: ["e2e/**/*.test.ts"],
    fileParallelism: false,
    testTimeout: 600_000,
    hookTimeout: 300_000,
  },
});
