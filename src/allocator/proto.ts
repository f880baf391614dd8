// Loads proto/allocator.proto and the standard health proto at run time (the generated types in
// src/gen describe exactly these objects; the options must match scripts/gen-proto.sh).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType as AllocatorProto } from '../gen/allocator.js';
import type { ProtoGrpcType as HealthProto } from '../gen/health.js';

export const LOADER_OPTIONS: protoLoader.Options = { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true };

/** proto/ beside src/ when run from source, one level further up when run from dist/. */
function protoDir(): string {
  for (const rel of ['../../proto', '../../../proto']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(`${p}/allocator.proto`)) return p;
  }
  return fileURLToPath(new URL('../../proto', import.meta.url));
}

let cached: { allocator: AllocatorProto; health: HealthProto } | undefined;

export function loadProtos(): { allocator: AllocatorProto; health: HealthProto } {
  if (cached) return cached;
  const dir = protoDir();
  const def = protoLoader.loadSync(['allocator.proto', 'grpc/health/v1/health.proto'], { ...LOADER_OPTIONS, includeDirs: [dir] });
  const pkg = grpc.loadPackageDefinition(def) as unknown;
  cached = { allocator: pkg as AllocatorProto, health: pkg as HealthProto };
  return cached;
}

/** Metadata keys carrying the catalogue code and its details next to the gRPC status. */
export const ERROR_CODE_KEY = 'rtpe-error-code';
export const ERROR_DETAILS_KEY = 'rtpe-error-details';
