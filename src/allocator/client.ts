// Typed gRPC client for the allocator (used by the sidecar and `ctl`): unix socket by default,
// promises instead of callbacks, and failures mapped back to coded AllocErrors.
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { AllocError, RtpeK8sError, type ErrorCode } from '../errors.js';
import { loadProtos, ERROR_CODE_KEY, ERROR_DETAILS_KEY } from './proto.js';
import { fromWire, toWire, type AllocationView } from './wire.js';
import type { AllocatorClient as RawClient } from '../gen/rtpengine_k8s/v1/Allocator.js';
import type { HealthClient } from '../gen/grpc/health/v1/Health.js';
import type { Allocation__Output } from '../gen/rtpengine_k8s/v1/Allocation.js';
import type { ListResponse__Output } from '../gen/rtpengine_k8s/v1/ListResponse.js';
import type { ReleaseResponse__Output } from '../gen/rtpengine_k8s/v1/ReleaseResponse.js';
import type { PodRef } from './store.js';

export const DEFAULT_SOCKET = '/run/rtpengine-k8s/allocator.sock';

export interface AllocatorClientOptions {
  /** Unix socket path (default /run/rtpengine-k8s/allocator.sock) … */
  socket?: string;
  /** … or `host:port` of the optional TCP listener. */
  address?: string;
  /** Per-call deadline (default 5000 ms). */
  timeoutMs?: number;
  /**
   * Kubernetes mode: the pod's projected service-account token, re-read on every call (the kubelet
   * rotates it) and sent as `authorization: Bearer <token>`.
   */
  tokenFile?: string;
}

export interface AcquireRequest { pod: PodRef; pools?: string[]; interface?: string }
/** A pod by UID, or by namespace + name (`ctl release ns/pod`). */
export type PodSelector = { uid: string } | { namespace: string; name: string };
export interface ListResult { node: string; allocations: AllocationView[]; tablesFree: number; tablesTotal: number }
export interface ReleaseResult { found: boolean; allocation?: AllocationView }

export class AllocatorClient {
  readonly target: string;
  private readonly raw: RawClient;
  private readonly healthRaw: HealthClient;
  private readonly timeoutMs: number;
  private readonly tokenFile: string | undefined;

  constructor(opts: AllocatorClientOptions = {}) {
    this.tokenFile = opts.tokenFile;
    this.target = opts.address ? opts.address : `unix:${opts.socket ?? DEFAULT_SOCKET}`;
    this.timeoutMs = opts.timeoutMs ?? 5000;
    const { allocator, health } = loadProtos();
    const creds = grpc.credentials.createInsecure();
    this.raw = new allocator.rtpengine_k8s.v1.Allocator(this.target, creds);
    // Share the channel so health and calls see the same connection.
    this.healthRaw = new health.grpc.health.v1.Health(this.target, creds, { channelOverride: this.raw.getChannel() });
  }

  /** Call metadata: the token, read now (a missing or empty file → ALLOC_UNAUTHENTICATED, no call made). */
  private metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    if (!this.tokenFile) return md;
    let token: string;
    try { token = readFileSync(this.tokenFile, 'utf8').trim(); } catch (e) {
      throw new AllocError('ALLOC_UNAUTHENTICATED', { reason: `cannot read the token file ${this.tokenFile}: ${(e as Error).message}`, audience: '(as projected)' });
    }
    if (!token) throw new AllocError('ALLOC_UNAUTHENTICATED', { reason: `the token file ${this.tokenFile} is empty`, audience: '(as projected)' });
    md.set('authorization', `Bearer ${token}`);
    return md;
  }

  /** One unary call with our deadline; `invoke` picks the generated method (typed request and reply). */
  private call<Res>(invoke: (md: grpc.Metadata, opts: grpc.CallOptions, cb: grpc.requestCallback<Res>) => void): Promise<Res> {
    return new Promise((resolve, reject) => {
      invoke(this.metadata(), { deadline: Date.now() + this.timeoutMs }, (err, res) => {
        if (err) reject(this.mapError(err));
        else if (res === undefined) reject(new AllocError('ALLOC_UNAVAILABLE', { target: this.target, reason: 'empty reply' }));
        else resolve(res);
      });
    });
  }

  /** Server-side coded errors come back with their code and details; transport failures → ALLOC_UNAVAILABLE. */
  private mapError(err: grpc.ServiceError): RtpeK8sError {
    const code = err.metadata?.get(ERROR_CODE_KEY)?.[0];
    if (typeof code === 'string') {
      let details: Record<string, unknown> = {};
      try { details = JSON.parse(String(err.metadata.get(ERROR_DETAILS_KEY)?.[0] ?? '{}')); } catch { /* keep empty */ }
      return code.startsWith('ALLOC_') || code.startsWith('KERNEL_')
        ? new AllocError(code as never, details)
        : new RtpeK8sError(code as ErrorCode, details);
    }
    // The server's transport refused the request itself (larger than its limit): a wrong request, not an outage.
    if (err.code === grpc.status.RESOURCE_EXHAUSTED) return new AllocError('ALLOC_INVALID_ARGUMENT', { field: 'request', reason: `refused by the allocator's transport: ${err.details}` }, { cause: err });
    return new AllocError('ALLOC_UNAVAILABLE', { target: this.target, reason: `${grpc.status[err.code] ?? err.code}: ${err.details}` }, { cause: err });
  }

  async acquire(req: AcquireRequest): Promise<AllocationView> {
    const msg = { pod: req.pod, pools: req.pools ?? [], interface: req.interface ?? '' };
    return fromWire(await this.call<Allocation__Output>((md, o, cb) => this.raw.Acquire(msg, md, o, cb)));
  }

  /** `held`: the allocation this pod holds, so an allocator that lost it with a damaged state file can re-adopt it. */
  async renew(uid: string, held?: AllocationView): Promise<AllocationView> {
    return fromWire(await this.call<Allocation__Output>((md, o, cb) => this.raw.Renew({ uid, held: held ? toWire(held) : null }, md, o, cb)));
  }

  async release(sel: PodSelector, reason = ''): Promise<ReleaseResult> {
    const res = await this.call<ReleaseResponse__Output>((md, o, cb) => this.raw.Release({ ...sel, reason }, md, o, cb));
    return { found: res.found, allocation: res.allocation ? fromWire(res.allocation) : undefined };
  }

  async get(sel: PodSelector): Promise<AllocationView> {
    return fromWire(await this.call<Allocation__Output>((md, o, cb) => this.raw.Get(sel, md, o, cb)));
  }

  async list(): Promise<ListResult> {
    const res = await this.call<ListResponse__Output>((md, o, cb) => this.raw.List({}, md, o, cb));
    return { node: res.node, allocations: res.allocations.map(fromWire), tablesFree: res.tablesFree, tablesTotal: res.tablesTotal };
  }

  /** grpc.health.v1 Check: 'SERVING' | 'NOT_SERVING' | …; unreachable → ALLOC_UNAVAILABLE. */
  health(service = ''): Promise<string> {
    return new Promise((resolve, reject) => {
      this.healthRaw.check({ service }, { deadline: Date.now() + this.timeoutMs }, (err, res) => {
        if (err) reject(this.mapError(err));
        else resolve(String(res?.status ?? 'UNKNOWN'));
      });
    });
  }

  close(): void { this.raw.close(); }
}
