#!/usr/bin/env bash
# Generates TypeScript for the APIs under cirrus/ into src/gen: ts-proto
# messages and gRPC services (protoc from the `protoc` npm package, no
# system protoc needed), and plain descriptors of the compute API
# (scripts/descriptors.mjs). The output is checked in; `npm test` fails when
# regenerating changes it.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(cd ../node_modules/.bin && pwd)
include=$(cd ../node_modules/protoc/include && pwd)
rm -rf src/gen
mkdir -p src/gen
"$bin/protoc" \
  --plugin=protoc-gen-ts_proto="$bin/protoc-gen-ts_proto" \
  --ts_proto_out=src/gen \
  --ts_proto_opt=outputServices=grpc-js,esModuleInterop=true,env=node,forceLong=number,importSuffix=.js,useDate=false,emitImportedFiles=false \
  -I . -I "$include" cirrus/compute/v1/compute.proto cirrus/agent/v1/agent.proto
node scripts/descriptors.mjs
