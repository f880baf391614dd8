import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AllocError, GrpcStatus, NgError, catalogue, isCoded } from './errors.js';

test('coded errors carry message, gRPC status, exit code and ng reason', () => {
  const e = new AllocError('ALLOC_TABLES_EXHAUSTED', { node: 'n1', inUse: 64, size: 64, range: '0-63' });
  assert.equal(e.code, 'ALLOC_TABLES_EXHAUSTED');
  assert.equal(e.grpcStatus, GrpcStatus.RESOURCE_EXHAUSTED);
  assert.match(e.message, /node n1: 64 of 64 in use/);
  assert.ok(isCoded(e, 'ALLOC_TABLES_EXHAUSTED'));
  assert.equal(new NgError('PROXY_DRAINING').ngReason, 'Parallel session limit reached');
});

test('every catalogue entry renders a message without details and has distinct code', () => {
  const rows = catalogue();
  assert.ok(rows.length > 30);
  assert.equal(new Set(rows.map((r) => r.code)).size, rows.length);
  for (const r of rows) {
    assert.ok(r.exit >= 0 && r.exit < 128, r.code);
    assert.ok(Object.values(GrpcStatus).includes(r.grpc as never), r.code);
  }
});
