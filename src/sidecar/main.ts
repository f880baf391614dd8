// The `sidecar` command: Acquire → media address → forwarding rules → rtpengine (exec or config
// file) → ng proxy + control server → pod-deletion-cost; on SIGTERM: drain → linger (Kamailio drops
// us first) → rtpengine gone → rules → address → Release → exit 0. Crash-only: a restart reattaches.
import { join } from 'node:path';
import { mkdir, writeFile, unlink, readFile, rename } from 'node:fs/promises';
import { Gauge, type Registry } from 'prom-client';
import { defineCommand } from '../command.js';
import { AllocatorClient } from '../allocator/client.js';
import type { AllocationView } from '../allocator/wire.js';
import type { KubePort } from '../kube/client.js';
import { Exit, SidecarError, isCoded } from '../errors.js';
import type { Logger } from '../log.js';
import { createRegistry, METRIC_PREFIX } from '../metrics.js';
import { systemClock, type Clock } from '../clock.js';
import { processRunner, type Runner } from '../exec.js';
import { acquireWithRetry, keepLease, releaseAllocation, type AllocatorPort } from './acquire.js';
import {
  adoptOrSpawn, detectKernel, detectVersion, ngPing, planForwarding, removePidFile, renderArgs, renderConfig,
  rtpengineOptions, waitNgReady, writeConfigFile, type Era, type ForwardingPlan, type SupervisedRtpengine,
} from './rtpengine.js';
import { createIptables, detectBackend } from './iptables.js';
import { ForwardingRules } from './rules.js';
import { MediaAddressManager } from './netaddr.js';
import { DeletionCost } from './deletion-cost.js';
import { sidecarOptions, type SidecarConfig } from './options.js';
import { proxyOptions, parseHostPort, type ProxyConfig } from './proxy-options.js';
import { startNgProxy, type NgProxy } from './proxy.js';
import { startControlServer, type ControlServer, type Readiness } from './http.js';

export type FullSidecarConfig = SidecarConfig & ProxyConfig;
/**
 * `drained`: the drain is complete (0 sessions, or its deadline) and the sidecar still answers
 * (ping → pong, new offers → load limit): lingering before shutdown when terminating, or staying up
 * drained after an HTTP/CLI drain. kamailio-sync removes the node when it sees it (ADR 0041).
 */
export type SidecarState = 'starting' | 'serving' | 'draining' | 'drained' | 'stopping' | 'stopped';

export interface StepRecord { step: string; outcome: 'done' | 'skipped' | 'failed'; detail: string; /** ms since start when the step ended. */ atMs: number }

export interface SidecarStatus {
  pod: string;
  uid: string;
  state: SidecarState;
  table?: number;
  mediaIps: string[];
  ng: string[];
  control?: string;
  sessions: number;
  /** True from the moment the drain completed: what kamailio-sync waits for (ADR 0041). */
  drainComplete: boolean;
  /** SIGTERM (or stop()) received: the sidecar ends after the drain and the linger. */
  terminating: boolean;
  drainLingerSeconds: number;
  /** Epoch ms when the linger ends (terminating and drained). */
  lingerUntil?: number;
  /** The drained marker that keeps this pod drained across restarts, when written. */
  drainedMarker?: string;
  kernelForwarding: boolean;
  era?: Era;
  rtpenginePid?: number;
  steps: StepRecord[];
  proxy?: Record<string, unknown>;
}

export interface SidecarDeps {
  log: Logger;
  registry: Registry;
  clock?: Clock;
  runner?: Runner;
  /** Default: an AllocatorClient on config.allocatorSocket. */
  allocator?: AllocatorPort & { close?(): void };
  /** Default: from --kubeconfig / in-cluster when --deletion-cost is on; failures → disabled with a warning. */
  kube?: Pick<KubePort, 'patchPodAnnotations'>;
  /** Aborts the Acquire retries (a SIGTERM while still starting). */
  signal?: AbortSignal;
}

export interface SidecarHandle {
  allocation: AllocationView;
  /** ms from start to ready, excluding rtpengine's own start-up (exec mode). */
  readyMs: number;
  status(): SidecarStatus;
  /** SIGTERM path: drain, then tear down. Resolves with the exit code. Idempotent. */
  stop(trigger?: string): Promise<number>;
  /** Resolves with the exit code when the sidecar ends by itself (rtpengine died, drain finished). */
  done: Promise<number>;
}

export function sidecarFileName(runDir: string, uid: string): string {
  return join(runDir, `sidecar-${uid}.json`);
}

/** Written when a drain starts on a pod that is not terminating (HTTP/CLI): a restart comes back drained. */
export function drainedMarkerName(runDir: string, uid: string): string {
  return join(runDir, `drained-${uid}.json`);
}

export interface DrainedMarker { pod: string; uid: string; trigger: string; at: number }

/** The marker if present and for this UID; a damaged one counts as present (draining is the safe side). */
export async function readDrainedMarker(runDir: string, uid: string): Promise<DrainedMarker | undefined> {
  let text: string;
  try { text = await readFile(drainedMarkerName(runDir, uid), 'utf8'); } catch { return undefined; }
  try {
    const m = JSON.parse(text) as Partial<DrainedMarker>;
    return { pod: String(m.pod ?? '?'), uid, trigger: String(m.trigger ?? '?'), at: Number(m.at ?? 0) };
  } catch {
    return { pod: '?', uid, trigger: 'unreadable marker', at: 0 };
  }
}

async function writeDrainedMarker(runDir: string, m: DrainedMarker): Promise<string> {
  const path = drainedMarkerName(runDir, m.uid);
  await mkdir(runDir, { recursive: true });
  await writeFile(`${path}.tmp`, JSON.stringify(m));
  await rename(`${path}.tmp`, path);
  return path;
}

/**
 * Config mode: rtpengine is another container that got its TERM with us (or waits in a preStop hook).
 * Rules, address and allocation belong to it until it stops answering ping (two misses in a row),
 * or until the deadline passes. Progress is logged every `progressMs`.
 */
export async function waitRtpengineGone(host: string, port: number, o: { deadlineMs: number; clock: Clock; log: Logger; intervalMs?: number; progressMs?: number }): Promise<{ gone: boolean; waitedMs: number }> {
  const t0 = o.clock.monotonic();
  let misses = 0;
  let nextLog = t0 + (o.progressMs ?? 5000);
  for (;;) {
    const alive = await ngPing(host, port, 300);
    misses = alive ? 0 : misses + 1;
    const now = o.clock.monotonic();
    if (misses >= 2) return { gone: true, waitedMs: Math.round(now - t0) };
    if (now - t0 >= o.deadlineMs) return { gone: false, waitedMs: Math.round(now - t0) };
    if (now >= nextLog) {
      o.log.info({ ng: `${host}:${port}`, waitedS: Math.round((now - t0) / 1000), leftS: Math.round((t0 + o.deadlineMs - now) / 1000) },
        'config mode: rtpengine still answers ping; waiting for it to stop before removing rules and address and releasing');
      nextLog = now + (o.progressMs ?? 5000);
    }
    await o.clock.sleep(o.intervalMs ?? 250);
  }
}

/** Starts every part in order; on a failure midway undoes what was done and rethrows. */
export async function startSidecar(cfg: FullSidecarConfig, deps: SidecarDeps): Promise<SidecarHandle> {
  const t0 = (deps.clock ?? systemClock).monotonic();
  const clock = deps.clock ?? systemClock;
  const runner = deps.runner ?? processRunner;
  const log = deps.log.child({ component: 'sidecar' });
  const podRef = { namespace: cfg.podNamespace, name: cfg.podName, uid: cfg.podUid };
  const pod = `${cfg.podNamespace}/${cfg.podName}`;
  const steps: StepRecord[] = [];
  const step = (s: string, outcome: StepRecord['outcome'], detail: string) => { steps.push({ step: s, outcome, detail, atMs: Math.round(clock.monotonic() - t0) }); };
  let state: SidecarState = 'starting';
  let excludedMs = 0;

  const kernelGauge = new Gauge({ name: `${METRIC_PREFIX}kernel_forwarding`, help: '1 when rtpengine forwards in the kernel, 0 in userspace', registers: [deps.registry] });
  const tableGauge = new Gauge({ name: `${METRIC_PREFIX}kernel_table`, help: 'kernel table ID this pod holds (-1 userspace)', registers: [deps.registry] });

  const undo: Array<{ what: string; fn: () => Promise<unknown> }> = [];
  const unwind = async () => {
    for (const u of undo.reverse()) {
      try { await u.fn(); } catch (e) { log.error({ step: u.what, err: (e as Error).message }, 'clean-up step failed'); }
    }
    undo.length = 0;
  };

  const allocator = deps.allocator ?? new AllocatorClient({ socket: cfg.allocatorSocket });
  if (!deps.allocator) undo.push({ what: 'close allocator client', fn: async () => (allocator as AllocatorClient).close() });
  const adeps = { allocator, clock, log };

  try {
    // 1. What rtpengine we drive and whether the kernel module is there.
    const ngUp = parseHostPort(cfg.ngUpstream)!;
    let era: Era;
    if (cfg.rtpengineEra === 'auto') {
      const v = await detectVersion(runner, cfg.rtpengineBinary);
      era = v.era;
      step('rtpengine version', 'done', `${v.version.raw} → era ${era}`);
    } else {
      era = cfg.rtpengineEra;
      step('rtpengine version', 'skipped', `era given: ${era}`);
    }
    const kernel = await detectKernel(cfg.procRoot);

    // 2. Acquire (idempotent per UID: a restart gets the same table and IP).
    const allocation = await acquireWithRetry(adeps, { pod: podRef, pools: cfg.pools.length ? cfg.pools : undefined, interface: cfg.mediaInterface },
      { timeoutMs: cfg.acquireTimeoutSeconds * 1000, initialDelayMs: 200, maxDelayMs: 5000 }, deps.signal);
    undo.push({ what: 'release', fn: () => releaseAllocation(adeps, cfg.podUid, 'sidecar start-up failed') });
    step('acquire', 'done', `table ${allocation.table}, ${allocation.addresses.map((a) => a.ip).join(', ') || 'no address'}`);
    const lease = keepLease(adeps, cfg.podUid, allocation.leaseTtlMs);
    undo.push({ what: 'stop lease renewal', fn: async () => lease.stop() });

    // 3. Kernel or userspace, and who owns the firewall rule.
    let plan: ForwardingPlan;
    try {
      plan = planForwarding({ kernel: kernel.present, era, table: allocation.table, requireKernel: cfg.requireKernel, kernelReason: kernel.reason });
    } catch (e) {
      step('kernel forwarding', 'failed', kernel.reason);
      throw e;
    }
    if (!plan.kernel) {
      log.warn({ pod, table: allocation.table, reason: kernel.reason },
        '!!! KERNEL FORWARDING UNAVAILABLE: rtpengine runs in userspace (table -1). Media works but at userspace speed. Load the rtpengine kernel module on this node, or set --require-kernel to fail instead. !!!');
      step('kernel forwarding', 'skipped', `userspace: ${kernel.reason}`);
    } else {
      step('kernel forwarding', 'done', `table ${plan.table}, era ${era}, rule by ${plan.rules === 'iptables' ? 'our chain' : `rtpengine (nftables-chain ${plan.nftablesChain})`}`);
    }
    kernelGauge.set(plan.kernel ? 1 : 0);
    tableGauge.set(plan.table);

    // 4. The media address on the pod.
    const addresses = allocation.addresses.map((a) => ({ ip: a.ip, prefixLength: a.prefixLength }));
    const mediaIps = addresses.map((a) => a.ip);
    if (!mediaIps.length) throw new SidecarError('NET_ADDR_MISSING', { ip: '(none allocated)', dev: cfg.mediaInterface });
    const addrMgr = new MediaAddressManager({ runner, log, clock }, cfg.mediaAddressMode, cfg.mediaInterface);
    for (const a of addresses) {
      const r = await addrMgr.ensure(a);
      undo.push({ what: `remove address ${a.ip}`, fn: () => addrMgr.remove(a) });
      step(`media address ${a.ip}`, r.action === 'skipped' ? 'skipped' : 'done',
        r.action === 'skipped' ? 'mode none: the address is already local (loopback/hostNetwork)' : `${r.action} on ${cfg.mediaInterface}`);
    }

    // 5. mr11: our chain with -j RTPENGINE --id N.
    let rules: ForwardingRules | undefined;
    if (plan.rules === 'iptables') {
      const backend = cfg.iptablesBackend === 'auto' ? await detectBackend(runner) : { backend: cfg.iptablesBackend, reason: 'given' };
      rules = new ForwardingRules(createIptables(runner, backend.backend), { table: plan.table, addresses: mediaIps, portMin: cfg.portMin, portMax: cfg.portMax, target: cfg.iptablesTarget }, log);
      await rules.apply();
      const r = rules;
      undo.push({ what: 'remove rules', fn: () => r.remove() });
      step('iptables rules', 'done', `chain ${rules.chain} (${backend.backend}: ${backend.reason})${cfg.iptablesTarget !== 'RTPENGINE' ? `, target swapped to ${cfg.iptablesTarget}` : ''}`);
    } else {
      step('iptables rules', 'skipped', plan.rules === 'daemon' ? 'rtpengine ≥ mr12 manages nftables itself' : 'userspace forwarding needs no rule');
    }

    // 6. rtpengine: config file for a separate container, or exec + supervise.
    const extra = { 'delete-delay': cfg.deleteDelaySeconds, ...cfg.rtpengineOptions };
    const opts = rtpengineOptions({
      plan, addresses: mediaIps, interfaceName: cfg.interfaceName || undefined, advertised: cfg.advertisedAddress || undefined,
      ngHost: ngUp.host, ngPort: ngUp.port, portMin: cfg.portMin, portMax: cfg.portMax, extra,
    });
    let daemon: SupervisedRtpengine | undefined;
    const pidFile = join(cfg.runDir, `rtpengine-${cfg.podUid}.pid`);
    if (cfg.rtpengineMode === 'config') {
      await writeConfigFile(cfg.rtpengineConfig, renderConfig(opts, `written by rtpengine-k8s sidecar for ${pod} (uid ${cfg.podUid})`));
      step('rtpengine', 'done', `config written to ${cfg.rtpengineConfig}`);
    } else {
      const args = renderArgs(opts);
      const tStart = clock.monotonic();
      const { proc, adopted } = await adoptOrSpawn({ pidFile, binary: cfg.rtpengineBinary, args, log: log.child({ component: 'rtpengine' }), clock });
      daemon = proc;
      const d = proc;
      undo.push({ what: 'stop rtpengine', fn: async () => { await d.stop(); await removePidFile(pidFile); } });
      const died = new AbortController();
      void proc.exited.then(() => died.abort());
      try {
        await waitNgReady(ngUp.host, ngUp.port, { timeoutMs: cfg.rtpengineReadySeconds * 1000, clock, abort: died.signal });
      } catch (e) {
        if (died.signal.aborted) {
          const st = await proc.exited;
          throw new SidecarError('RTPENGINE_EXITED', { code: st.code, signal: st.signal, tail: proc.tail().slice(-1500) });
        }
        throw e;
      }
      excludedMs = clock.monotonic() - tStart;
      step('rtpengine', 'done', `${adopted ? 'reattached to' : 'started'} pid ${proc.pid}: ${args.join(' ')}`);
    }

    // 7. The ng proxy and the control server.
    const proxy: NgProxy = await startNgProxy(cfg, { log, registry: deps.registry, clock });
    undo.push({ what: 'close ng proxy', fn: () => proxy.close() });
    step('ng proxy', 'done', `listening on ${proxy.addresses.map((a) => `${a.host}:${a.port}`).join(', ')} → ${cfg.ngUpstream}`);

    // 8. pod-deletion-cost.
    let kube = deps.kube;
    if (cfg.deletionCost && !kube) {
      try {
        // Only for pod-deletion-cost: without it the sidecar never loads @kubernetes/client-node.
        const { createKubeClient, kubeConfigFrom } = await import('../kube/client.js');
        kube = createKubeClient(kubeConfigFrom({ kubeconfig: cfg.kubeconfig || undefined }));
      } catch (e) {
        log.warn({ err: (e as Error).message }, 'no Kubernetes API access: pod-deletion-cost stays unmanaged');
      }
    }
    let cost: DeletionCost | undefined;
    if (cfg.deletionCost && kube) {
      cost = new DeletionCost({ kube, namespace: cfg.podNamespace, pod: cfg.podName, clock, log, intervalMs: cfg.deletionCostIntervalSeconds * 1000, registry: deps.registry });
      const c = cost;
      proxy.sessions.on('change', (n: number) => c.update(n));
      c.update(proxy.sessions.count());
      undo.push({ what: 'stop deletion-cost', fn: () => c.close() });
      step('pod-deletion-cost', 'done', `bucketed, at most every ${cfg.deletionCostIntervalSeconds} s`);
    } else {
      step('pod-deletion-cost', 'skipped', cfg.deletionCost ? 'no Kubernetes API access' : 'disabled (--no-deletion-cost)');
    }
    // The lifecycle after start: stop() (SIGTERM) or rtpengine's death end the sidecar. A drain
    // started over HTTP/CLI on a pod that is not terminating stays drained and running (ADR 0041).
    let stopping: Promise<number> | undefined;
    let terminating = false;
    let lingerUntil: number | undefined;
    let markerPath: string | undefined;
    let markerWrite: Promise<void> | undefined;
    let settle!: (code: number) => void;
    const done = new Promise<number>((r) => { settle = r; });

    const persistDrain = (trigger: string) => {
      if (markerPath || markerWrite) return;
      markerWrite = writeDrainedMarker(cfg.runDir, { pod, uid: cfg.podUid, trigger, at: clock.now() })
        .then((p) => { markerPath = p; log.info({ pod, marker: p, trigger }, 'drain on a pod that is not terminating: marker written, a restart comes back drained'); })
        .catch((e: unknown) => { log.error({ pod, err: (e as Error).message, runDir: cfg.runDir }, 'could not write the drained marker: a restart of this container would serve again'); })
        .finally(() => { markerWrite = undefined; });
    };
    proxy.events.on('drain', (s: { phase: string; trigger?: string; outcome?: string; sessionsLeft?: number }) => {
      if (s.phase === 'draining') {
        if (state === 'serving') state = 'draining';
        void cost?.drain();
        if (!terminating) persistDrain(s.trigger ?? 'api');
      }
      if (s.phase === 'drained') {
        if (state === 'serving' || state === 'draining') state = 'drained';
        if (!terminating) {
          log.info({ pod, outcome: s.outcome, sessionsLeft: s.sessionsLeft, trigger: s.trigger },
            'drain complete on a pod that is not terminating: staying up drained (pong to pings, load limit to new calls); kamailio-sync removes the node; delete the pod to end it');
        }
      }
    });

    const drainComplete = () => proxy.status().drain.phase === 'drained';
    const statusOf = (): SidecarStatus => ({
      pod, uid: cfg.podUid, state, table: allocation.table, mediaIps,
      ng: proxy.addresses.map((a) => `${a.host}:${a.port}`), control: control?.url,
      sessions: proxy.sessions.count(), drainComplete: drainComplete(), terminating, drainLingerSeconds: cfg.drainLingerSeconds,
      ...(lingerUntil !== undefined ? { lingerUntil } : {}), ...(markerPath ? { drainedMarker: markerPath } : {}),
      kernelForwarding: plan.kernel, era, rtpenginePid: daemon?.pid, steps: [...steps],
      proxy: proxy.status(),
    });
    const target = {
      ready: (): Readiness => {
        const r = proxy.ready();
        return state === 'serving' || state === 'draining' || state === 'drained' ? r : { ready: false, reasons: [...r.reasons, `sidecar ${state}`] };
      },
      status: () => statusOf() as unknown as Record<string, unknown>,
      drain: (o: { deadlineMs?: number; trigger: string }) => proxy.drain(o),
      // GET /drain/wait (httpGet preStop): answered when the proxy's drain is complete.
      drained: () => proxy.drained(),
    };
    const listen = parseHostPort(cfg.controlListen)!;
    const control: ControlServer = await startControlServer({ host: listen.host, port: listen.port, registry: deps.registry, target, log, allowRemoteDrain: cfg.controlRemoteDrain });
    undo.push({ what: 'close control server', fn: () => control.close() });

    // Where `rtpengine-k8s status` finds us.
    const infoFile = sidecarFileName(cfg.runDir, cfg.podUid);
    await mkdir(cfg.runDir, { recursive: true });
    await writeFile(infoFile, JSON.stringify({ pod, uid: cfg.podUid, control: control.url }));
    undo.push({ what: 'remove status file', fn: () => unlink(infoFile).catch(() => undefined) });

    // A drain that was started here before a restart (HTTP/CLI, pod not terminating) still holds.
    const marker = await readDrainedMarker(cfg.runDir, cfg.podUid);
    if (marker) {
      markerPath = drainedMarkerName(cfg.runDir, cfg.podUid);
      log.warn({ pod, marker: markerPath, trigger: marker.trigger, since: marker.at ? new Date(marker.at).toISOString() : undefined },
        'this pod was drained before the restart: coming back drained (load limit to new calls); delete the pod, or remove the marker and restart the container, to serve again');
      proxy.drain({ trigger: `restart (drained by ${marker.trigger})` });
      step('drained marker', 'done', `${markerPath}: drained by ${marker.trigger} before a restart`);
    }

    const teardown = async (why: string, code: number): Promise<number> => {
      state = 'stopping';
      log.info({ pod, why }, 'stopping: rtpengine, rules, address, then release');
      // Remove what we set up in reverse order, but release last and on purpose (not "start-up failed").
      const releaseIdx = undo.findIndex((u) => u.what === 'release');
      if (releaseIdx >= 0) undo[releaseIdx] = { what: 'release', fn: () => releaseAllocation(adeps, cfg.podUid, why) };
      await unwind();
      state = 'stopped';
      log.info({ pod, code }, 'sidecar stopped');
      return code;
    };

    const stop = (trigger = 'signal'): Promise<number> => {
      if (stopping) return stopping;
      terminating = true;
      stopping = (async () => {
        if (state === 'serving') state = 'draining';
        proxy.drain({ trigger });
        void cost?.drain();
        const ds = await proxy.drained();
        if (state === 'draining') state = 'drained';
        log.info({ pod, outcome: ds.outcome, sessionsLeft: ds.sessionsLeft }, 'drain finished');
        // kamailio.md §7 step 5: Kamailio drops the node first, then it may vanish. kamailio-sync
        // sees drainComplete within its poll and reloads within its window (ADR 0041); until the
        // linger ends we keep answering: ping → pong, new offers → load limit.
        const completedAt = ds.completedAt ?? clock.now();
        lingerUntil = completedAt + cfg.drainLingerSeconds * 1000;
        const lingerMs = lingerUntil - clock.now();
        if (lingerMs > 0) {
          log.info({ pod, lingerMs: Math.round(lingerMs) }, 'drain complete; still answering until Kamailio has dropped this node');
          await clock.sleep(lingerMs);
          step('linger', 'done', `answered ${Math.round(lingerMs)} ms after the drain completed`);
        }
        if (cfg.rtpengineMode === 'config' && cfg.rtpengineStopWaitSeconds > 0) {
          state = 'stopping';
          log.info({ pod, ng: cfg.ngUpstream, deadlineS: cfg.rtpengineStopWaitSeconds }, 'config mode: waiting for rtpengine to stop before removing rules and address and releasing');
          const w = await waitRtpengineGone(ngUp.host, ngUp.port, { deadlineMs: cfg.rtpengineStopWaitSeconds * 1000, clock, log });
          if (w.gone) {
            log.info({ pod, waitedMs: w.waitedMs }, 'config mode: rtpengine stopped answering ping');
            step('rtpengine stopped', 'done', `no ping answer after ${w.waitedMs} ms`);
          } else {
            log.warn({ pod, waitedMs: w.waitedMs }, 'config mode: rtpengine still answers ping after the deadline; removing rules and address and releasing anyway');
            step('rtpengine stopped', 'failed', `still answering after ${w.waitedMs} ms (--rtpengine-stop-wait-seconds)`);
          }
        }
        return teardown(`drain ${ds.outcome ?? 'done'} (${trigger})`, Exit.OK);
      })();
      void stopping.then(settle);
      return stopping;
    };

    if (daemon) {
      const d = daemon;
      void d.exited.then(async (st) => {
        if (d.stopping || stopping) return;
        const err = new SidecarError('RTPENGINE_EXITED', { code: st.code, signal: st.signal, tail: d.tail().slice(-1500) });
        log.error({ pod, code: st.code, signal: st.signal }, err.message);
        stopping = teardown('rtpengine exited', err.exitCode);
        settle(await stopping);
      });
    }

    const phase = proxy.status().drain.phase;
    state = phase === 'serving' ? 'serving' : phase === 'draining' ? 'draining' : 'drained';
    const readyMs = clock.monotonic() - t0 - excludedMs;
    log.info({ pod, table: allocation.table, mediaIps, kernel: plan.kernel, era, mode: cfg.rtpengineMode, readyMs: Math.round(readyMs), control: control.url }, 'sidecar ready');
    return { allocation, readyMs, status: statusOf, stop, done };
  } catch (e) {
    log.error({ pod, err: (e as Error).message, code: isCoded(e) ? e.code : undefined }, 'sidecar start-up failed; undoing what was set up');
    await unwind();
    throw e;
  }
}

export const sidecarCommand = defineCommand({
  name: 'sidecar',
  summary: 'per-pod sidecar: acquire table + media IP, set up rtpengine and kernel forwarding, proxy ng, drain on SIGTERM',
  options: { ...sidecarOptions, ...proxyOptions },
  async run(config, _positionals, ctx) {
    const registry = createRegistry({ labels: { pod: `${config.podNamespace}/${config.podName}` } });
    const startAbort = ctx.signal;
    const handle = await startSidecar(config as FullSidecarConfig, { log: ctx.log, registry, signal: ctx.signal });
    if (startAbort.aborted) return handle.stop('signal');
    const onStop = () => { void handle.stop(`signal ${ctx.stopReason() ?? ''}`.trim()); };
    ctx.signal.addEventListener('abort', onStop, { once: true });
    return handle.done;
  },
});
