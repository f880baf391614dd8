// What allocators leave in the API when their node is gone (autoscaler, upgrade) or the install is
// removed: freeInstallation() frees our IPPool entries and table Leases (finalizers first) of the
// nodes a filter picks; NodeSweeper runs it for vanished nodes, one leader at a time (a Lease).
import type { KubePort, Lease } from './../kube/client.js';
import { kubeStatus } from '../kube/client.js';
import { V1MicroTime } from '../kube/k8s.js';
import type { Logger } from '../log.js';
import { systemClock, type Clock, type Timer } from '../clock.js';
import type { PoolSpan } from './pools.js';
import { IPPoolWriter, ipPoolName, parseOurEntryId } from './ippool.js';
import { ANNOTATION_NODE, LABEL_MANAGED, LABEL_ROLE, stripAndDeleteLease } from './store-kube.js';

const MANAGER = 'rtpengine-k8s';
export const SWEEPER_LEASE = 'rtpengine-k8s-node-sweeper';
const ROLE_SWEEPER = 'node-sweeper-leader';

export interface InstallationScope {
  kube: KubePort;
  leaseNamespace: string;
  poolNamespace: string;
  /** The pools the allocators reserve in (their IPPools are searched for our entries). */
  pools: Array<{ span: PoolSpan; networkName?: string }>;
  log?: Logger;
  /**
   * Uninstall (`ctl cleanup`): first mark every pool uninstalled (this time) so allocators still
   * running write nothing more — a pool write re-reads and refuses, an Acquire rolls back its Lease.
   */
  markUninstalled?: string;
}

export interface Freed { kind: 'lease' | 'ippool-entry'; node: string; name: string }

/**
 * Free every IPPool entry (`rtpe-alloc/<node>/…`) and every rtpengine-k8s Lease (table Leases and
 * the per-node release-times Lease; finalizers removed first) whose node `pick` selects. Entries are
 * removed only if still ours (id-checked test-and-patch), Leases only with their UID as precondition.
 * `nodesListedAfter`: called after everything was read, so a node seen alive then is never swept.
 */
export async function freeInstallation(o: InstallationScope, pick: (node: string) => boolean | Promise<boolean>, nodesListedAfter?: () => Promise<void>): Promise<Freed[]> {
  const freed: Freed[] = [];
  if (o.markUninstalled !== undefined) {
    const marker = new IPPoolWriter(o.kube, o.poolNamespace);
    for (const p of o.pools) await marker.markUninstalled(ipPoolName(p.span.range, p.networkName), p.span.range, o.markUninstalled);
  }
  const leases = (await o.kube.listLeases(o.leaseNamespace, `${LABEL_MANAGED}=${MANAGER}`)).filter((l) => l.metadata?.labels?.[LABEL_ROLE] !== ROLE_SWEEPER);
  const writer = new IPPoolWriter(o.kube, o.poolNamespace);
  const entries: Array<{ pool: string; range: string; offset: string; id: string; node: string }> = [];
  for (const p of o.pools) {
    const name = ipPoolName(p.span.range, p.networkName);
    const pool = await o.kube.getIPPool(o.poolNamespace, name);
    for (const [offset, e] of Object.entries(pool?.spec.allocations ?? {})) {
      const ours = parseOurEntryId(e.id);
      if (ours) entries.push({ pool: name, range: p.span.range, offset, id: e.id, node: ours.node });
    }
  }
  await nodesListedAfter?.();
  const nodeOf = (l: Lease) => l.metadata?.annotations?.[ANNOTATION_NODE] ?? '';
  for (const e of entries) {
    if (!(await pick(e.node))) continue;
    if (await writer.release(e.pool, e.range, e.offset, e.id, true)) freed.push({ kind: 'ippool-entry', node: e.node, name: `${e.pool}[${e.offset}]` });
  }
  for (const l of leases) {
    const node = nodeOf(l);
    if (!node || !(await pick(node))) continue;
    const name = l.metadata!.name!;
    try {
      if (await stripAndDeleteLease(o.kube, o.leaseNamespace, l)) freed.push({ kind: 'lease', node, name });
    } catch (e) {
      // 404: gone meanwhile; 409: changed (a new holder) — either way not ours to free now
      const st = kubeStatus(e);
      if (st !== 404 && st !== 409) throw e;
    }
  }
  return freed;
}

export interface NodeSweeperOptions extends InstallationScope {
  /** This allocator's identity in the leader Lease (its node name). */
  identity: string;
  /** Period of a sweep round (ms); the leader Lease lasts 3 periods. 0: no timer (tests call round()). */
  intervalMs: number;
  leaseDurationSeconds?: number;
  /**
   * Time (default: the system clock): the round timer, renewTime written, and — monotonic — how long
   * the leader record has been unchanged and how long a node has been absent.
   */
  clock?: Clock;
  /** Each freed object (rtpengine_k8s_allocator_swept_total{kind}). */
  onFreed?: (f: Freed) => void;
}

/**
 * Frees what allocators of nodes that no longer exist left behind; only the leader sweeps. A node
 * is freed only after this leader saw it absent in two node lists at least one leader-Lease period
 * apart, and never in a round whose node list lacks the leader's own node (a wrong or partial list).
 */
export class NodeSweeper {
  private timer: Timer | undefined;
  private running: Promise<unknown> | undefined;
  private readonly clock: Clock;
  /** The leader record as last read and the local monotonic time it was first seen so (client-go's observedTime). */
  private observed: { record: string; at: number } | undefined;
  private readonly duration: number;
  /** Node → monotonic time this leader first saw it missing from the node list (reset when seen). */
  private readonly absentSince = new Map<string, number>();

  constructor(private readonly o: NodeSweeperOptions) {
    this.clock = o.clock ?? systemClock;
    this.duration = o.leaseDurationSeconds ?? Math.max(15, Math.ceil((3 * o.intervalMs) / 1000));
  }

  start(): void {
    if (this.o.intervalMs <= 0) return;
    this.timer = this.clock.setInterval(() => { if (!this.running) this.running = this.round().catch((e) => this.o.log?.warn({ error: (e as Error).message }, 'node sweep failed; next round retries')).finally(() => { this.running = undefined; }); }, this.o.intervalMs);
  }

  /** One round: lead (take or renew the Lease), then sweep. Returns what was freed ([] when not leader). */
  async round(): Promise<Freed[]> {
    if (!(await this.lead())) { this.absentSince.clear(); return []; }
    let live: Set<string> | undefined;
    let trusted = false;
    const at = this.clock.monotonic();
    const owners = new Set<string>();
    const pick = (node: string) => {
      owners.add(node);
      if (!trusted || live!.has(node)) return false;
      const since = this.absentSince.get(node);
      if (since === undefined) { this.absentSince.set(node, at); return false; }
      return at - since >= this.duration * 1000;
    };
    const freed = await freeInstallation(this.o, pick, async () => {
      live = new Set(await this.o.kube.listNodeNames());
      for (const n of [...this.absentSince.keys()]) if (live.has(n)) this.absentSince.delete(n);
      // A list without our own node is not the cluster we run in (wrong context, partial answer): no sweep.
      trusted = live.has(this.o.identity);
      if (!trusted) this.o.log?.warn({ decision: 'node-sweep-skipped', nodes: live.size, identity: this.o.identity }, 'node list lacks this allocator\'s own node; sweep round skipped');
    });
    for (const n of [...this.absentSince.keys()]) if (!owners.has(n)) this.absentSince.delete(n); // nothing left of it
    for (const f of freed) {
      this.o.onFreed?.(f);
      this.o.log?.info({ decision: 'node-swept', kind: f.kind, node: f.node, name: f.name }, 'freed what the allocator of a vanished node left');
    }
    return freed;
  }

  /**
   * Take the leader Lease if free or expired, renew it if ours; false when another allocator leads.
   * Expiry as client-go's leader election: the holder's record (holder, renewTime, transitions) must
   * have stayed unchanged for a lease duration of *local* monotonic time since this allocator first
   * saw it so — never by comparing the holder's renewTime with the local wall clock (clocks differ).
   */
  async lead(): Promise<boolean> {
    const ns = this.o.leaseNamespace;
    const me = this.o.identity;
    const now = this.clock.now();
    const mono = this.clock.monotonic();
    const spec = (transitions: number, acquired?: unknown) => ({
      holderIdentity: me, leaseDurationSeconds: this.duration, leaseTransitions: transitions,
      acquireTime: (acquired as V1MicroTime | undefined) ?? new V1MicroTime(now), renewTime: new V1MicroTime(now),
    });
    const cur = await this.o.kube.getLease(ns, SWEEPER_LEASE);
    try {
      if (!cur) {
        await this.o.kube.createLease(ns, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: SWEEPER_LEASE, labels: { [LABEL_MANAGED]: MANAGER, [LABEL_ROLE]: ROLE_SWEEPER } }, spec: spec(0) });
        return true;
      }
      const holder = cur.spec?.holderIdentity;
      const record = JSON.stringify([holder, String(cur.spec?.renewTime ?? ''), cur.spec?.leaseTransitions ?? 0, cur.spec?.leaseDurationSeconds]);
      if (this.observed?.record !== record) this.observed = { record, at: mono };
      const expired = !holder || mono - this.observed.at >= (cur.spec?.leaseDurationSeconds ?? this.duration) * 1000;
      if (holder !== me && !expired) return false;
      const transitions = (cur.spec?.leaseTransitions ?? 0) + (holder === me ? 0 : 1);
      await this.o.kube.replaceLease(ns, { ...cur, spec: spec(transitions, holder === me && cur.spec?.acquireTime ? new V1MicroTime(new Date(cur.spec.acquireTime as unknown as string).getTime()) : undefined) });
      return true;
    } catch (e) {
      if (kubeStatus(e) === 409) return false; // another allocator took or renewed it first
      throw e;
    }
  }

  async stop(): Promise<void> {
    this.timer?.cancel();
    await this.running;
  }
}
