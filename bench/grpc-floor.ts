// Child-process entry for the 'allocator' bench: the gRPC transport floor. Serves the Allocator
// service from proto/allocator.proto on a unix socket with constant replies (no store, no /proc,
// no logic), so the bench can tell what part of an Acquire's latency is grpc-js itself. With a
// state file, Acquire first makes one durable write through the allocator's FileStore (the same
// writer, the same record size): both floors in one RPC, as an Acquire pays them.
//   node --import tsx bench/grpc-floor.ts <socket> [<state file>]   prints `ready` once serving; SIGTERM stops it
import * as grpc from '@grpc/grpc-js';
import { loadProtos } from '../src/allocator/proto.js';
import { serverOptions, DEFAULT_TRANSPORT } from '../src/allocator/server.js';
import type { AllocatorHandlers } from '../src/gen/rtpengine_k8s/v1/Allocator.js';
import type { Allocation } from '../src/gen/rtpengine_k8s/v1/Allocation.js';
import { FileStore } from '../src/allocator/store-file.js';
import type { Allocation as Stored } from '../src/allocator/store.js';

const [socket, stateFile] = process.argv.slice(2);
if (!socket) {
  process.stderr.write('usage: grpc-floor.ts <socket> [<state file>]\n');
  process.exit(64);
}
const { allocator } = loadProtos();
// The same shape and size as a real allocation on the wire.
const allocation: Allocation = {
  pod: { namespace: 'bench', name: 'floor', uid: 'floor' }, node: 'bench', table: 7, state: 'active',
  addresses: [{ pool: 'media', ip: '10.40.0.8', prefixLength: 16, gateway: '' }],
  createdAtMs: Date.now(), renewedAtMs: Date.now(), leaseExpiresAtMs: Date.now() + 60_000, leaseTtlMs: 60_000,
};
// The durable variant: a one-record store, as the allocator holds while the bench runs.
const record: Stored = {
  pod: { namespace: 'bench', name: 'floor', uid: 'floor' }, node: 'bench', table: 7, state: 'active',
  addresses: [{ pool: 'media', ip: '10.40.0.8', prefixLength: 16, gateway: '', offset: '8' }], createdAt: 1, renewedAt: 1, leaseExpiresAt: 1,
};
let store: FileStore | undefined;
if (stateFile) {
  store = new FileStore(stateFile);
  await store.load();
  await store.create(record);
}
let n = 0;
const handlers: AllocatorHandlers = {
  Acquire: store
    ? (_c, cb) => { store!.update({ ...record, renewedAt: ++n }).then(() => cb(null, allocation), (e: Error) => cb(e)); }
    : (_c, cb) => cb(null, allocation),
  Renew: (_c, cb) => cb(null, allocation),
  Release: (_c, cb) => cb(null, { found: true, allocation }),
  Get: (_c, cb) => cb(null, allocation),
  List: (_c, cb) => cb(null, { node: 'bench', allocations: [allocation], tablesFree: 63, tablesTotal: 64 }),
};
// The allocator's own transport options (keepalive, idle limit, message size), so only the logic differs.
const server = new grpc.Server(serverOptions(DEFAULT_TRANSPORT));
server.addService(allocator.rtpengine_k8s.v1.Allocator.service, handlers);
server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) { process.stderr.write(`grpc-floor: ${err.message}\n`); process.exit(1); }
  process.stdout.write('ready\n');
});
process.on('SIGTERM', () => server.tryShutdown(() => { void (store?.close() ?? Promise.resolve()).finally(() => process.exit(0)); }));
