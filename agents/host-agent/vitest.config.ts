import { defineConfig } from "vitest/config";

// For `npm test` inside this package; from the repository root the root
// config runs these same files.
export default defineConfig({
  test: { include: ["test/**/*.test.ts"], testTimeout: 300_000, hookTimeout: 120_000 },
});
