import { defineConfig } from "vitest/config";

/**
 * End-to-end files that boot no VM (fake-driver hosts or none): they run two
 * at a time (vitest.parallel.config.ts). Every other file boots real guests
 * on a 2-core machine and runs alone; a new file is one of those until it
 * is listed here.
 */
export const WITHOUT_VMS = [
  "e2e/accounts.test.ts",
  "e2e/bad-input.test.ts",
  "e2e/capacity.test.ts",
  "e2e/cli.test.ts",
  "e2e/grpc-surface.test.ts",
  "e2e/key-pairs.test.ts",
  "e2e/network-api.test.ts",
  "e2e/network-limits.test.ts",
  "e2e/query-api.test.ts",
  "e2e/query-fuzz.test.ts",
  "e2e/query-tls.test.ts",
  "e2e/tags.test.ts",
];

export const e2eBase = {
  resolve: { conditions: ["cirrus-source"] },
  ssr: { resolve: { conditions: ["cirrus-source"] } },
};

// Every file, one at a time; with CIRRUS_E2E_VMS_ONLY (test/run.sh, after the
// parallel run) only the files that boot VMs.
export default defineConfig({
  ...e2eBase,
  test: {
    include: ["e2e/**/*.test.ts"],
    exclude: ["**/node_modules/**", ...(process.env.CIRRUS_E2E_VMS_ONLY ? WITHOUT_VMS : [])],
    fileParallelism: false,
    testTimeout: 600_000,
    hookTimeout: 300_000,
  },
});
