#!/usr/bin/env bash
# The test command (`npm test`): prepares the host (QEMU, libvirt, test AMI),
# checks generated code and types, then runs the unit tests and the
# end-to-end tests against real Postgres, Redis, libvirt and QEMU.
# Postgres and Redis: CIRRUS_TEST_ADMIN_DATABASE_URL / CIRRUS_TEST_REDIS_URL,
# else local servers (installed and started when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/prepare-host.sh
eval "$(bash deploy/test-services.sh)"

# Generated code is checked: regenerating must not change the tree.
npx turbo run generate --output-logs=errors-only
generated=(proto/src/gen services/api/src/query/model.gen.json)
if git rev-parse --is-inside-work-tree >/dev/null 2>&1 && ! git diff --quiet -- "${generated[@]}"; then
	echo "generated code is stale: run 'npm run generate' and commit the result" >&2
	git diff --stat -- "${generated[@]}" >&2
	exit 1
fi
# The services, the agent and the CLI run compiled JavaScript.
npx turbo run build typecheck --output-logs=errors-only
npx eslint . --max-warnings 0

reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
status=0
npx vitest run --reporter=default --reporter=json --outputFile="$reports/unit.json" || status=1
# End-to-end: the files without VMs two at a time, then those that boot VMs one at a time.
npx vitest run --root test --config vitest.parallel.config.ts --reporter=default --reporter=json --outputFile="$reports/e2e-parallel.json" || status=1
CIRRUS_E2E_VMS_ONLY=1 npx vitest run --root test --reporter=default --reporter=json --outputFile="$reports/e2e.json" || status=1
# One plain summary line over both runs.
node -e '
const fs = require("fs"); let p = 0, f = 0, s = 0;
for (const file of process.argv.slice(1)) {
  if (!fs.existsSync(file)) { f++; continue; }
  const r = JSON.parse(fs.readFileSync(file, "utf8"));
  // A file that failed outside any test (e.g. in a hook) counts as one failure.
  p += r.numPassedTests; f += r.numFailedTests || (r.success ? 0 : 1); s += r.numPendingTests + (r.numTodoTests || 0);
}
console.log(`${p} passed, ${f} failed, ${s} skipped`);
' "$reports/unit.json" "$reports/e2e-parallel.json" "$reports/e2e.json"
exit $status
