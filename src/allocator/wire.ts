// Domain allocation <-> protobuf message, shared by the server and the typed client.
import type { Allocation as WireAllocation, Allocation__Output as WireAllocationOut } from '../gen/rtpengine_k8s/v1/Allocation.js';
import type { Allocation, AllocationState } from './store.js';

/** What the API returns: the stored allocation plus 'released' (gone) and the lease TTL in force. */
export interface AllocationView extends Omit<Allocation, 'state'> {
  state: AllocationState | 'released';
  leaseTtlMs: number;
}

export function toWire(a: AllocationView): WireAllocation {
  return {
    pod: { ...a.pod }, node: a.node, table: a.table, state: a.state,
    addresses: a.addresses.map((x) => ({ pool: x.pool, ip: x.ip, prefixLength: x.prefixLength, gateway: x.gateway, offset: x.offset })),
    createdAtMs: a.createdAt, renewedAtMs: a.renewedAt, leaseExpiresAtMs: a.leaseExpiresAt, leaseTtlMs: a.leaseTtlMs,
  };
}

export function fromWire(w: WireAllocationOut): AllocationView {
  return {
    pod: { namespace: w.pod?.namespace ?? '', name: w.pod?.name ?? '', uid: w.pod?.uid ?? '' },
    node: w.node, table: w.table, state: w.state as AllocationView['state'],
    addresses: w.addresses.map((x) => ({ pool: x.pool, ip: x.ip, prefixLength: x.prefixLength, gateway: x.gateway, offset: x.offset })),
    createdAt: Number(w.createdAtMs), renewedAt: Number(w.renewedAtMs), leaseExpiresAt: Number(w.leaseExpiresAtMs), leaseTtlMs: w.leaseTtlMs,
  };
}
