// Wires one allocator: store + kernel port + service + gRPC server + sweep timer + optional
// /metrics,/healthz HTTP port. `startAllocator` is what the CLI, `npm start` and tests embed.
import { startMetricsServer, type MetricsServer } from '../http/metrics-server.js';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Registry } from 'prom-client';
import type { Logger } from '../log.js';
import { createRegistry } from '../metrics.js';
import { systemClock, type Clock, type Timer } from '../clock.js';
import { AllocError, isCoded } from '../errors.js';
import type { Parsed } from '../config.js';
import { AllocatorService } from './service.js';
import { FileStore } from './store-file.js';
import { ProcKernel, type KernelPort, type ProcFs } from './kernel.js';
import { startServer, prepareSocket, parseListen, tokenAuthentication, type Authenticate, type RunningServer, type TransportLimits } from './server.js';
import type { TokenReviewer } from '../kube/tokenreview.js';
import { allocatorMetrics } from './metrics.js';
import { parseTableRange, type TableRange } from './tables.js';
import { poolsSchema, type allocatorOptions } from './options.js';
import type { PoolConfig } from './pools.js';
import type { AllocationStore } from './store.js';
import type { KubernetesModeConfig } from './reconcile-kube.js';

export interface AllocatorConfig {
  node: string;
  socket: string;
  tcpListen?: string;
  tableRange: TableRange;
  pools: PoolConfig[];
  defaultPools?: string[];
  stateFile: string;
  procRoot: string;
  leaseTtlMs: number;
  sweepIntervalMs: number;
  metricsListen?: string;
  /** gRPC transport limits (idle connections closed, keepalive); default DEFAULT_TRANSPORT. */
  transport?: Partial<TransportLimits>;
  /** `--store kubernetes`: Leases + whereabouts IPPools, pod identity, reconciliation. */
  kubernetes?: Omit<KubernetesModeConfig, 'node' | 'pools'>;
  /**
   * Kubernetes mode: every Acquire/Renew/Release carries the pod's projected service-account token,
   * verified by TokenReview; the token's pod must be the request's pod. Absent: the socket's file
   * mode is the only boundary (file mode). Needs `kubernetes` (its kubeconfig) or deps.tokenReviewer.
   */
  callerAuth?: { audience: string; cacheTtlMs?: number };
  /** Root-only (0600) socket where calls act as an operator (`ctl release`), logged as such; with callerAuth. */
  operatorSocket?: string;
}

export interface AllocatorDeps {
  log: Logger;
  registry?: Registry;
  clock?: Clock;
  /** Stand-in for the /proc file operations (tests: test/support/proc-rtpengine.ts). */
  procFs?: ProcFs;
  kernel?: KernelPort;
  /** Another store (Kubernetes); default the file store at config.stateFile. */
  store?: AllocationStore;
  /** TokenReview port for callerAuth; default the Kubernetes API of config.kubernetes. */
  tokenReviewer?: TokenReviewer;
}

export interface AllocatorHandle {
  service: AllocatorService;
  store: AllocationStore;
  socket: string;
  tcpAddress?: string;
  metricsAddress?: string;
  registry: Registry;
  close(): Promise<void>;
}

/** --pools plus the pools of --pools-file (allocator and 'ctl cleanup'). */
export function poolsFromOptions(o: { pools: PoolConfig[]; poolsFile?: string }): PoolConfig[] {
  const pools: PoolConfig[] = [...o.pools];
  if (o.poolsFile) {
    let raw: unknown;
    try { raw = JSON.parse(readFileSync(o.poolsFile, 'utf8')); } catch (e) {
      throw new AllocError('ALLOC_POOL_INVALID', { pool: o.poolsFile, reason: `cannot read pools file: ${(e as Error).message}` });
    }
    const r = poolsSchema.safeParse(raw);
    if (!r.success) {
      const i = r.error.issues[0]!;
      throw new AllocError('ALLOC_POOL_INVALID', { pool: o.poolsFile, reason: `at ${i.path.join('.') || '(root)'}: ${i.message}` });
    }
    pools.push(...r.data);
  }
  return pools;
}

/** Parsed CLI options → config; reads --pools-file. */
export function configFromOptions(o: Parsed<typeof allocatorOptions>): AllocatorConfig {
  const pools = poolsFromOptions(o);
  return {
    node: o.nodeName || hostname(),
    socket: o.socket,
    tcpListen: o.tcpListen || undefined,
    tableRange: parseTableRange(o.tableRange),
    pools,
    defaultPools: o.defaultPools.length ? o.defaultPools : undefined,
    stateFile: o.stateFile,
    procRoot: o.procRoot,
    leaseTtlMs: Math.round(o.leaseTtl * 1000),
    sweepIntervalMs: Math.round(o.sweepInterval * 1000),
    metricsListen: o.metricsListen || undefined,
    transport: { idleTimeoutMs: Math.round(o.idleTimeout * 1000), maxConnections: o.maxConnections },
    callerAuth: o.store === 'kubernetes' && o.callerAuth === 'token' ? { audience: o.tokenAudience } : undefined,
    operatorSocket: o.store === 'kubernetes' && o.callerAuth === 'token' ? o.operatorSocket : undefined,
    kubernetes: o.store === 'kubernetes' ? {
      kubeconfig: o.kubeconfig || undefined,
      leaseNamespace: o.leaseNamespace,
      poolNamespace: o.poolNamespace,
      networkName: o.networkName || undefined,
      allowUncheckedOverlap: o.allowUncheckedOverlap,
      ipMode: o.ipMode,
      networkStatusInterface: o.networkStatusInterface,
      resyncIntervalMs: Math.round(o.resyncInterval * 1000),
    } : undefined,
  };
}

export async function startAllocator(config: AllocatorConfig, deps: AllocatorDeps): Promise<AllocatorHandle> {
  const log = deps.log.child({ component: 'allocator' });
  const clock = deps.clock ?? systemClock;
  const registry = deps.registry ?? createRegistry({ defaultMetrics: false });
  // Before any step that changes state (store lock, Kubernetes resync and its releases, `del N`):
  // a live allocator on this socket means this one must not start at all.
  await prepareSocket(config.socket, log);
  // @kubernetes/client-node (~35 MB of heap, ~1 s to load) only for `--store kubernetes`.
  const km = config.kubernetes && !deps.store
    ? (await import('./reconcile-kube.js')).kubernetesMode({ ...config.kubernetes, node: config.node, pools: config.pools }, log)
    : undefined;
  const store = deps.store ?? km?.store ?? new FileStore(config.stateFile);
  let service: AllocatorService | undefined;
  let server: RunningServer;
  let operator: RunningServer | undefined;
  let mainStarted: RunningServer | undefined;
  try {
    // Caller authentication before anything is served (TokenReview needs the Kubernetes API).
    let authenticate: Authenticate | undefined;
    if (config.callerAuth) {
      const tr = await import('../kube/tokenreview.js');
      const reviewer = deps.tokenReviewer ?? await tr.kubeTokenReviewer((await import('../kube/client.js')).kubeConfigFrom({ kubeconfig: config.kubernetes?.kubeconfig }));
      authenticate = tokenAuthentication(new tr.TokenVerifier(reviewer, { audience: config.callerAuth.audience, cacheTtlMs: config.callerAuth.cacheTtlMs }));
    }
    const kernel = deps.kernel ?? new ProcKernel({ root: config.procRoot, fs: deps.procFs });
    const metrics = allocatorMetrics(registry);
    // open() loads the store first: the file store's lock refuses a second allocator on one state file here.
    service = await AllocatorService.open(
      { node: config.node, tableRange: config.tableRange, pools: km ? km.servicePools : config.pools, defaultPools: config.defaultPools, leaseTtlMs: km ? km.leaseTtlMs : config.leaseTtlMs },
      { store, kernel, clock, log, onAcquire: metrics.observeAcquire, onReclaim: metrics.reclaim, onCleanup: metrics.cleanup, onRecovery: metrics.recovery, onReadopt: metrics.readopt },
    );
    if (!(await kernel.available())) log.warn({ procRoot: config.procRoot }, 'no rtpengine kernel module proc tree: nothing to check or clean; pods will forward in userspace');
    metrics.attach(service);
    // Kubernetes mode: rebuild from the API and resync once before serving; acquire is identity-checked.
    const served = km ? await km.attach(service, { onReclaim: metrics.reclaim, onSwept: metrics.swept }) : service;
    if (km) log.info({ store: 'kubernetes', node: config.node }, 'state rebuilt from the Kubernetes API');
    server = await startServer(served, { socket: config.socket, tcpListen: config.tcpListen, transport: config.transport, authenticate, onConnectionRefused: metrics.connectionRefused }, log);
    mainStarted = server;
    if (authenticate && config.operatorSocket) {
      // A convenience for operators, not a reason to leave the node without an allocator: without
      // a writable place for it (e.g. a read-only root file system and no volume there) it is off, loudly.
      try {
        operator = await startServer(served, { socket: config.operatorSocket, transport: config.transport, operator: true, onConnectionRefused: metrics.connectionRefused }, log);
      } catch (e) {
        if (isCoded(e, 'ALLOC_SOCKET_IN_USE')) throw e;
        log.error({ operatorSocket: config.operatorSocket, error: (e as Error).message }, 'operator socket not available: ctl release on this node needs --operator-socket in a writable directory that is not mounted into pods (chart: the allocator state hostPath); pods still act only for themselves');
      }
    }
    log.info({ callerAuth: authenticate ? `token (audience ${config.callerAuth!.audience})` : 'none: the socket file mode is the only boundary', operatorSocket: operator?.socket }, 'caller authentication');
  } catch (e) {
    await mainStarted?.close().catch(() => undefined);
    await km?.stop().catch(() => undefined);
    await service?.drain();
    await store.close().catch(() => undefined);
    throw e;
  }

  let http: MetricsServer | undefined;
  let metricsAddress: string | undefined;
  if (config.metricsListen) {
    const { host, port } = parseListen(config.metricsListen, 'metrics-listen');
    try {
      http = await startMetricsServer({ host, port, registry, log });
    } catch (e) {
      await server.close();
      await operator?.close();
      await km?.stop().catch(() => undefined);
      await store.close().catch(() => undefined);
      throw new AllocError('ALLOC_UNAVAILABLE', { target: config.metricsListen, reason: `cannot listen: ${(e as Error).message}` });
    }
    metricsAddress = `${host.includes(':') ? `[${host}]` : host}:${http.port}`;
    log.info({ metrics: metricsAddress }, 'serving /metrics, /healthz and /readyz');
  }

  // Sweep once now (leftover busy tables, leases restarted at load), then on a timer.
  await service.sweep();
  const timer: Timer = clock.setInterval(() => { void service.sweep(); }, config.sweepIntervalMs);

  let closed: Promise<void> | undefined;
  return {
    service, store, socket: server.socket, tcpAddress: server.tcpAddress, metricsAddress, registry,
    close() {
      closed ??= (async () => {
        timer.cancel();
        await server.close();
        await operator?.close();
        await km?.stop();
        await service.drain();
        await store.close();
        if (http) await http.close();
        log.info({ socket: config.socket }, 'allocator stopped');
      })();
      return closed;
    },
  };
}
