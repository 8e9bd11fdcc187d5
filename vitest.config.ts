import { defineConfig } from "vitest/config";

// Unit and component tests of every package. The end-to-end suite has its own
// config (test/vitest.config.ts) and runs after these. Workspace packages are
// resolved to their TypeScript sources ("cirrus-source" export condition).
export default defineConfig({
  resolve: { conditions: ["cirrus-source"] },
  ssr: { resolve: { conditions: ["cirrus-source"] } },
  test: {
    include: ["services/*/test/**/*.test.ts", "agents/*/test/**/*.test.ts", "proto/test/**/*.test.ts"],
    testTimeout: 300_000,
    hookTimeout: 120_000,
  },
});
