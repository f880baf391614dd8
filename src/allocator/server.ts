// gRPC transport for the allocator: unix socket (stale file replaced only if nothing answers,
// a live allocator there → refuse), optional TCP listener, grpc.health.v1, small handlers.
import { parseListen as parseListenAddress } from '../net/host-port.js';
import * as grpc from '@grpc/grpc-js';
import { connect, createServer as createNetServer, type Server as NetServer } from 'node:net';
import { promises as fsp } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../log.js';
import { AllocError, RtpeK8sError } from '../errors.js';
import { loadProtos, ERROR_CODE_KEY, ERROR_DETAILS_KEY } from './proto.js';
import { toWire, fromWire } from './wire.js';
import type { Allocation__Output } from '../gen/rtpengine_k8s/v1/Allocation.js';
import type { HeldAllocation } from './service.js';
import { LIMITS, clip } from './limits.js';
import type { PodIdentity, TokenVerifier } from '../kube/tokenreview.js';
import type { AllocatorService } from './service.js';
import type { AllocatorHandlers } from '../gen/rtpengine_k8s/v1/Allocator.js';
import type { HealthHandlers } from '../gen/grpc/health/v1/Health.js';
import type { HealthCheckRequest__Output } from '../gen/grpc/health/v1/HealthCheckRequest.js';
import type { HealthCheckResponse, HealthCheckResponse__Output } from '../gen/grpc/health/v1/HealthCheckResponse.js';

const SERVICE_NAME = 'rtpengine_k8s.v1.Allocator';

/** Does anything accept connections on this unix socket? */
function answers(path: string, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const done = (v: boolean) => { s.destroy(); resolve(v); };
    s.setTimeout(timeoutMs, () => done(true)); // accepted but silent: someone is there
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** Make the socket path usable: parent created; a stale socket removed only after nobody answers. */
export async function prepareSocket(path: string, log: Logger): Promise<void> {
  await fsp.mkdir(dirname(path), { recursive: true, mode: 0o755 });
  let st;
  try { st = await fsp.lstat(path); } catch { return; }
  if (!st.isSocket()) throw new AllocError('ALLOC_SOCKET_IN_USE', { socket: `${path} (exists and is not a socket; remove it by hand)` });
  if (await answers(path)) throw new AllocError('ALLOC_SOCKET_IN_USE', { socket: path });
  log.warn({ socket: path }, 'removing stale socket file: nothing answers on it');
  await fsp.unlink(path);
}

/** Status message and trailer sizes: a reply never carries more than this much text (a caller's value is quoted as a prefix). */
const MAX_STATUS_TEXT = 1024;
const MAX_DETAIL_TEXT = 256;

/** Details for the trailer: every string value cut to a bounded prefix (they may quote a caller). */
function boundedDetails(d: Record<string, unknown>): string {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(d)) out[k] = typeof v === 'string' ? clip(v, MAX_DETAIL_TEXT) : typeof v === 'object' && v !== null ? clip(JSON.stringify(v), MAX_DETAIL_TEXT) : v;
  // Metadata values must be printable ASCII: anything else as a JSON \u escape (still the same JSON).
  return JSON.stringify(out).replace(/[^\x20-\x7e]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function toServiceError(e: unknown, log: Logger): Partial<grpc.StatusObject> {
  const md = new grpc.Metadata();
  if (e instanceof RtpeK8sError) {
    md.set(ERROR_CODE_KEY, e.code);
    md.set(ERROR_DETAILS_KEY, boundedDetails(e.details));
    return { code: e.grpcStatus as grpc.status, details: clip(`[${e.code}] ${e.message}`, MAX_STATUS_TEXT), metadata: md };
  }
  log.error({ err: e }, 'unexpected failure in a handler');
  return { code: grpc.status.INTERNAL, details: clip(`internal error: ${(e as Error)?.message ?? String(e)}`, MAX_STATUS_TEXT), metadata: md };
}

/**
 * Every caller-supplied string is bounded before any use (issue 14.5): too long → INVALID_ARGUMENT
 * naming the field and its length, never echoing the value.
 */
export function checkBounds(fields: Array<[field: string, value: unknown, max: number]>): void {
  for (const [field, value, max] of fields) {
    if (typeof value === 'string' && value.length > max) throw new AllocError('ALLOC_INVALID_ARGUMENT', { field, reason: `is ${value.length} characters long, at most ${max} allowed` });
  }
}

const podBounds = (p: { namespace?: string; name?: string; uid?: string } | null | undefined, prefix: string): Array<[string, unknown, number]> => [
  [`${prefix}namespace`, p?.namespace, LIMITS.namespace], [`${prefix}name`, p?.name, LIMITS.podName], [`${prefix}uid`, p?.uid, LIMITS.uid],
];

/** Transport limits (issue 14.8): idle connections are closed, dead peers found by keepalive, requests small. */
export interface TransportLimits {
  /** Close a connection with no call in flight after this long (ms). */
  idleTimeoutMs: number;
  /** Ping a connection after this long without traffic; close it if the ping is not answered within keepaliveTimeoutMs. */
  keepaliveTimeMs: number;
  keepaliveTimeoutMs: number;
  /** Largest request accepted (bytes); our requests are well under 2 KB. */
  maxRequestBytes: number;
  /** Concurrent calls per connection. */
  maxStreamsPerConnection: number;
  /**
   * Open connections on the unix socket (review 14/16 finding 6): beyond it a new connection is
   * closed at once (logged, counted). A node's sidecars need one each; the default leaves ample room.
   */
  maxConnections: number;
}

export const DEFAULT_TRANSPORT: TransportLimits = { idleTimeoutMs: 120_000, keepaliveTimeMs: 60_000, keepaliveTimeoutMs: 20_000, maxRequestBytes: 64 * 1024, maxStreamsPerConnection: 128, maxConnections: 1024 };

export function serverOptions(l: TransportLimits): grpc.ServerOptions {
  return {
    'grpc.max_connection_idle_ms': l.idleTimeoutMs,
    'grpc.keepalive_time_ms': l.keepaliveTimeMs,
    'grpc.keepalive_timeout_ms': l.keepaliveTimeoutMs,
    'grpc.max_receive_message_length': l.maxRequestBytes,
    'grpc.max_concurrent_streams': l.maxStreamsPerConnection,
  };
}

type Handler<Req, Res> = (req: Req, md: grpc.Metadata) => Promise<Res> | Res;

/** Validate → one domain call → map. The callback is called exactly once. */
function unary<Req, Res>(fn: Handler<Req, Res>, log: Logger): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    let p: Promise<Res>;
    try { p = Promise.resolve(fn(call.request, call.metadata)); } catch (e) { callback(toServiceError(e, log)); return; }
    p.then((res) => callback(null, res), (e) => callback(toServiceError(e, log)));
  };
}

/**
 * Who a call acts as: a pod proven by its token (Kubernetes mode), an operator (the operator
 * socket), or whoever could open the socket (file mode: its file mode is the only boundary).
 */
export type Caller = { kind: 'pod'; pod: PodIdentity } | { kind: 'operator' } | { kind: 'socket' };
export type Authenticate = (md: grpc.Metadata) => Promise<Caller>;

/** Kubernetes mode: the `authorization: Bearer <token>` metadata, verified by TokenReview. */
export const tokenAuthentication = (v: TokenVerifier): Authenticate => async (md) => {
  const h = md.get('authorization');
  return { kind: 'pod', pod: await v.verifyHeader(h.length === 1 && typeof h[0] === 'string' ? h[0] : undefined) };
};

/** A pod may act only for itself: the request's pod must be the token's pod (PERMISSION_DENIED otherwise). */
function mustBe(c: Caller, want: { namespace?: string; name?: string; uid?: string }): void {
  if (c.kind !== 'pod') return;
  const p = c.pod;
  const bad = (want.uid && want.uid !== p.uid) || (want.namespace && want.namespace !== p.namespace) || (want.name && want.name !== p.name);
  if (!bad) return;
  throw new AllocError('ALLOC_PERMISSION_DENIED', {
    pod: want.namespace || want.name ? clip(`${want.namespace ?? ''}/${want.name ?? ''}`) : `uid ${clip(want.uid)}`,
    reason: `the caller's token was issued for pod ${p.namespace}/${p.name} (uid ${p.uid}); a pod may act only for itself (operators: the operator socket on the node)`,
  });
}

/** Renew's claim, bounded like any request field. */
function heldFromWire(h: Allocation__Output): HeldAllocation {
  if (h.addresses.length > LIMITS.poolsPerRequest) throw new AllocError('ALLOC_INVALID_ARGUMENT', { field: 'held.addresses', reason: `has ${h.addresses.length} entries, at most ${LIMITS.poolsPerRequest} allowed` });
  checkBounds([...podBounds(h.pod, 'held.pod.'), ...h.addresses.flatMap((x, i): Array<[string, unknown, number]> => [[`held.addresses[${i}].pool`, x.pool, LIMITS.pool], [`held.addresses[${i}].ip`, x.ip, 64], [`held.addresses[${i}].offset`, x.offset, 40]])]);
  const v = fromWire(h);
  return { pod: v.pod, table: v.table, addresses: v.addresses, createdAt: v.createdAt };
}

export interface ServerOptions {
  socket: string;
  /** Default: file mode (no check beyond the socket's file mode). */
  authenticate?: Authenticate;
  /** The operator socket: mode 0600, every caller is an operator, releases are logged as operator actions. */
  operator?: boolean;
  /** Default DEFAULT_TRANSPORT. */
  transport?: Partial<TransportLimits>;
  /** `host:port` (or `port`: loopback) for an optional TCP listener. */
  tcpListen?: string;
  /** A connection refused because maxConnections are open (metrics). */
  onConnectionRefused?: () => void;
}

export interface RunningServer {
  socket: string;
  /** Bound TCP `host:port`, when a TCP listener was asked for. */
  tcpAddress?: string;
  setServing(serving: boolean): void;
  close(): Promise<void>;
}

export function parseListen(text: string, field: string): { host: string; port: number } {
  const hp = parseListenAddress(text);
  if (!hp) throw new AllocError('ALLOC_INVALID_ARGUMENT', { field, reason: `must be PORT or HOST:PORT, got '${text}'` });
  return hp;
}

export async function startServer(service: AllocatorService, opts: ServerOptions, log: Logger): Promise<RunningServer> {
  const { allocator, health } = loadProtos();
  const limits: TransportLimits = { ...DEFAULT_TRANSPORT, ...opts.transport };
  const server = new grpc.Server(serverOptions(limits));
  const authenticate: Authenticate = opts.operator ? async () => ({ kind: 'operator' }) : opts.authenticate ?? (async () => ({ kind: 'socket' }));
  const handlers: AllocatorHandlers = {
    Acquire: unary(async (r, md) => {
      if (!r.pod) throw new AllocError('ALLOC_INVALID_ARGUMENT', { field: 'pod', reason: 'is required' });
      if (r.pools.length > LIMITS.poolsPerRequest) throw new AllocError('ALLOC_INVALID_ARGUMENT', { field: 'pools', reason: `names ${r.pools.length} pools, at most ${LIMITS.poolsPerRequest} allowed` });
      checkBounds([...podBounds(r.pod, 'pod.'), ['interface', r.interface, LIMITS.interface], ...r.pools.map((p, i): [string, unknown, number] => [`pools[${i}]`, p, LIMITS.pool])]);
      // Kubernetes mode: the token's pod, exactly (namespace, name and UID).
      const caller = await authenticate(md);
      if (caller.kind === 'pod') mustBe(caller, { namespace: r.pod.namespace || '\u0000', name: r.pod.name || '\u0000', uid: r.pod.uid || '\u0000' });
      return toWire(await service.acquire({ pod: r.pod, pools: r.pools, interface: r.interface }));
    }, log),
    Renew: unary(async (r, md) => {
      checkBounds([['uid', r.uid, LIMITS.uid]]);
      const held = r.held ? heldFromWire(r.held) : undefined;
      const caller = await authenticate(md);
      mustBe(caller, { uid: r.uid || '\u0000' });
      // The claim may re-adopt a lost record under its pod's namespace and name: they must be the token's too.
      if (held) mustBe(caller, { namespace: held.pod.namespace || '\u0000', name: held.pod.name || '\u0000', uid: held.pod.uid || '\u0000' });
      return toWire(await service.renew(r.uid, held));
    }, log),
    Release: unary(async (r, md) => {
      checkBounds([...podBounds(r, ''), ['reason', r.reason, LIMITS.reason]]);
      const caller = await authenticate(md);
      mustBe(caller, r.uid ? { uid: r.uid } : { namespace: r.namespace || '\u0000', name: r.name || '\u0000' });
      if (caller.kind === 'operator') log.warn({ decision: 'operator-release', uid: clip(r.uid), pod: r.namespace || r.name ? clip(`${r.namespace}/${r.name}`) : undefined, reason: clip(r.reason), socket: opts.socket }, 'operator action: release through the operator socket');
      // A pod releases only its own record: by name, an earlier pod of that name (another UID) is not it.
      const sel = caller.kind === 'pod' ? { uid: caller.pod.uid, namespace: r.namespace || undefined, name: r.name || undefined } : { uid: r.uid, namespace: r.namespace, name: r.name };
      const res = await service.release(sel, r.reason);
      return { found: res.found, allocation: res.allocation ? toWire(res.allocation) : null };
    }, log),
    Get: unary((r) => {
      checkBounds(podBounds(r, ''));
      return toWire(service.get({ uid: r.uid, namespace: r.namespace, name: r.name }));
    }, log),
    List: unary(() => {
      const l = service.list();
      return { node: l.node, allocations: l.allocations.map(toWire), tablesFree: l.tablesFree, tablesTotal: l.tablesTotal };
    }, log),
  };
  server.addService(allocator.rtpengine_k8s.v1.Allocator.service, handlers);

  let serving = true;
  const status = (svc: string): HealthCheckResponse__Output['status'] | undefined =>
    (svc === '' || svc === SERVICE_NAME ? (serving ? 'SERVING' : 'NOT_SERVING') : undefined);
  const watchers = new Set<grpc.ServerWritableStream<HealthCheckRequest__Output, HealthCheckResponse>>();
  const healthHandlers: HealthHandlers = {
    Check: (call, cb) => {
      const s = status(call.request.service);
      if (!s) { cb({ code: grpc.status.NOT_FOUND, details: `unknown service '${clip(call.request.service)}'` }); return; }
      cb(null, { status: s });
    },
    Watch: (call) => {
      call.write({ status: status(call.request.service) ?? 'SERVICE_UNKNOWN' });
      watchers.add(call);
      call.on('cancelled', () => watchers.delete(call));
    },
  };
  server.addService(health.grpc.health.v1.Health.service, healthHandlers);

  const bind = (addr: string) => new Promise<number>((resolve, reject) => {
    server.bindAsync(addr, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)));
  });
  await prepareSocket(opts.socket, log);
  // The unix socket is our own listener (its connections handed to gRPC), so the number of open
  // connections is capped: net.Server closes any beyond maxConnections at once ('drop').
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const listener: NetServer = createNetServer((sock) => injector.injectConnection(sock));
  listener.maxConnections = limits.maxConnections;
  let refused = 0;
  let lastRefusalLog = 0;
  listener.on('drop', () => {
    refused++;
    opts.onConnectionRefused?.();
    const now = Date.now();
    if (now - lastRefusalLog < 10_000) return; // at most one line per 10 s under a flood
    lastRefusalLog = now;
    log.warn({ decision: 'connection-refused', socket: opts.socket, maxConnections: limits.maxConnections, refusedSoFar: refused }, 'connection refused: the allocator socket already has maxConnections open (a local caller holding connections?)');
  });
  try {
    await new Promise<void>((resolve, reject) => { listener.once('error', reject); listener.listen(opts.socket, () => { listener.off('error', reject); resolve(); }); });
  } catch (e) {
    // Lost a start-up race with another allocator on the same path.
    injector.destroy();
    throw new AllocError('ALLOC_SOCKET_IN_USE', { socket: opts.socket, reason: (e as Error).message });
  }
  listener.on('error', (e) => log.error({ socket: opts.socket, error: e.message }, 'allocator socket listener error'));
  await fsp.chmod(opts.socket, opts.operator ? 0o600 : 0o660);
  let tcpAddress: string | undefined;
  if (opts.tcpListen) {
    const { host, port } = parseListen(opts.tcpListen, 'tcp-listen');
    const h = host.includes(':') ? `[${host}]` : host;
    try {
      const bound = await bind(`${h}:${port}`);
      tcpAddress = `${h}:${bound}`;
    } catch (e) {
      listener.close();
      injector.destroy();
      server.forceShutdown();
      await fsp.unlink(opts.socket).catch(() => undefined);
      throw new AllocError('ALLOC_UNAVAILABLE', { target: `${h}:${port}`, reason: `cannot listen: ${(e as Error).message}` });
    }
  }
  log.info({ socket: opts.socket, tcp: tcpAddress }, 'allocator serving gRPC');
  return {
    socket: opts.socket,
    tcpAddress,
    setServing(v) {
      serving = v;
      for (const w of watchers) w.write({ status: serving ? 'SERVING' : 'NOT_SERVING' });
    },
    async close() {
      serving = false;
      for (const w of watchers) w.end();
      watchers.clear();
      listener.close();
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => { server.forceShutdown(); resolve(); }, 2000);
        server.tryShutdown(() => { clearTimeout(t); resolve(); });
      });
      // Only our own socket file: it still is ours because a second allocator refuses to start.
      await fsp.unlink(opts.socket).catch(() => undefined);
    },
  };
}

