#!/usr/bin/env bash
# Generates TypeScript for every .proto under cirrus/ into src/gen with ts-proto,
# using protoc from the `protoc` npm package (no system protoc needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(cd ../node_modules/.bin && pwd)
rm -rf src/gen
mkdir -p src/gen
mapfile -t protos < <(find cirrus -name '*.proto' | sort)
"$bin/protoc" \
  --plugin=protoc-gen-ts_proto="$bin/protoc-gen-ts_proto" \
  --ts_proto_out=src/gen \
  --ts_proto_opt=outputServices=grpc-js,esModuleInterop=true,env=node,forceLong=number,importSuffix=.js,useDate=false \
  -I . "${protos[@]}"
