#!/usr/bin/env bash
# Regenerate src/gen/ (TypeScript types for proto/*.proto) offline with @grpc/proto-loader's
# proto-loader-gen-types; the loader options here must match src/allocator/proto.ts.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf src/gen
mkdir -p src/gen
node_modules/.bin/proto-loader-gen-types \
  --grpcLib=@grpc/grpc-js --outDir=src/gen --includeDirs=proto \
  --longs=Number --enums=String --defaults --oneofs --inputTemplate='%s' --outputTemplate='%s__Output' \
  allocator.proto grpc/health/v1/health.proto
# NodeNext needs explicit .js extensions on relative imports.
find src/gen -name '*.ts' -print0 | xargs -0 sed -i -E "s#(from '\.{1,2}/[^']*)(')#\1.js\2#"
echo "generated: $(find src/gen -name '*.ts' | wc -l) files in src/gen"
