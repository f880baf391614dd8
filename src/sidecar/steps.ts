// The sidecar's start-up steps, in order. Each sets its part up, records what it did, and returns
// the undo that removes it again (startup.ts runs them; main.ts wires the lifecycle around them).
import { join } from 'node:path';
import { Gauge } from 'prom-client';
import { SidecarError } from '../errors.js';
import { METRIC_PREFIX } from '../metrics.js';
import { acquireWithRetry, releaseAllocation } from './acquire.js';
import { leaseKeeper } from './lease.js';
import {
  adoptOrSpawn, assertNgPortOwner, detectKernel, detectVersion, planForwarding, removePidFile, renderArgs, renderConfig,
  rtpengineOptions, waitNgReady, type SupervisedRtpengine,
} from './rtpengine.js';
import { RtpengineSupervisor } from './supervisor.js';
import { createIptables, detectBackend } from './iptables.js';
import { ForwardingRules } from './rules.js';
import { MediaAddressManager } from './netaddr.js';
import { DeletionCost } from './deletion-cost.js';
import { startNgProxy } from './proxy.js';
import { startControlServer, type Readiness } from './http.js';
import { parseHostPort } from './proxy-options.js';
import { drainedMarkerName, readDrainedMarker, sidecarFileName } from './marker.js';
import { writeFileAtomic } from '../fs/atomic-file.js';
import { unlink } from 'node:fs/promises';
import { done, skipped, type Step, type StartContext } from './startup.js';
import { persistenceStep, restoreStep } from '../persistence/step.js';

const version: Step = {
  name: 'rtpengine version',
  async up(ctx) {
    ctx.kernel = await detectKernel(ctx.cfg.procRoot);
    if (ctx.cfg.rtpengineEra !== 'auto') { ctx.era = ctx.cfg.rtpengineEra; return skipped(`era given: ${ctx.era}`); }
    const v = await detectVersion(ctx.runner, ctx.cfg.rtpengineBinary);
    ctx.era = v.era;
    return done(`${v.version.raw} → era ${v.era}`);
  },
};

/** Acquire (idempotent per UID: a restart gets the same table and IP) and keep the lease. */
const acquire: Step = {
  name: 'acquire',
  async up(ctx) {
    const { cfg } = ctx;
    const adeps = { allocator: ctx.allocator, clock: ctx.clock, log: ctx.log };
    const podRef = { namespace: cfg.podNamespace, name: cfg.podName, uid: cfg.podUid };
    const a = await acquireWithRetry(adeps, { pod: podRef, pools: cfg.pools.length ? cfg.pools : undefined, interface: cfg.mediaInterface },
      { timeoutMs: cfg.acquireTimeoutSeconds * 1000, initialDelayMs: 200, maxDelayMs: 5000 }, ctx.signal);
    ctx.allocation = a;
    ctx.mediaIps = a.addresses.map((x) => x.ip);
    const lease = leaseKeeper(ctx);
    return done(`table ${a.table}, ${ctx.mediaIps.join(', ') || 'no address'}`, async () => {
      lease.stop();
      await releaseAllocation(adeps, cfg.podUid, ctx.releaseReason);
    });
  },
};

/** Kernel or userspace, and who owns the firewall rule. */
const forwarding: Step = {
  name: 'kernel forwarding',
  async up(ctx) {
    const kernel = ctx.kernel!;
    const plan = planForwarding({ kernel: kernel.present, era: ctx.era!, table: ctx.allocation!.table, requireKernel: ctx.cfg.requireKernel, kernelReason: kernel.reason });
    ctx.plan = plan;
    const kernelGauge = new Gauge({ name: `${METRIC_PREFIX}kernel_forwarding`, help: '1 when rtpengine forwards in the kernel, 0 in userspace', registers: [ctx.registry] });
    const tableGauge = new Gauge({ name: `${METRIC_PREFIX}kernel_table`, help: 'kernel table ID this pod holds (-1 userspace)', registers: [ctx.registry] });
    kernelGauge.set(plan.kernel ? 1 : 0);
    tableGauge.set(plan.table);
    if (!plan.kernel) {
      ctx.log.warn({ pod: ctx.pod, table: ctx.allocation!.table, reason: kernel.reason },
        '!!! KERNEL FORWARDING UNAVAILABLE: rtpengine runs in userspace (table -1). Media works but at userspace speed. Load the rtpengine kernel module on this node, or set --require-kernel to fail instead. !!!');
      return skipped(`userspace: ${kernel.reason}`);
    }
    return done(`table ${plan.table}, era ${ctx.era}, rule by ${plan.rules === 'iptables' ? 'our chain' : `rtpengine (nftables-chain ${plan.nftablesChain})`}`);
  },
};

/** The media address on the pod. */
const address: Step = {
  name: 'media address',
  async up(ctx) {
    const { cfg } = ctx;
    const addresses = ctx.allocation!.addresses.map((a) => ({ ip: a.ip, prefixLength: a.prefixLength }));
    if (!addresses.length) throw new SidecarError('NET_ADDR_MISSING', { ip: '(none allocated)', dev: cfg.mediaInterface });
    const mgr = new MediaAddressManager({ runner: ctx.runner, log: ctx.log, clock: ctx.clock }, cfg.mediaAddressMode, cfg.mediaInterface);
    const added: typeof addresses = [];
    const undo = async () => { for (const a of added.splice(0).reverse()) await mgr.remove(a); };
    const outcomes = [];
    try {
      for (const a of addresses) {
        const r = await mgr.ensure(a);
        added.push(a);
        outcomes.push(r.action === 'skipped'
          ? { step: `media address ${a.ip}`, outcome: 'skipped' as const, detail: 'mode none: the address is already local (loopback/hostNetwork)' }
          : { step: `media address ${a.ip}`, outcome: 'done' as const, detail: `${r.action} on ${cfg.mediaInterface}` });
      }
    } catch (e) { await undo(); throw e; }
    return { outcomes, undo };
  },
};

/** mr11: our chain with -j RTPENGINE --id N. */
const rules: Step = {
  name: 'iptables rules',
  async up(ctx) {
    const { cfg } = ctx;
    const plan = ctx.plan!;
    if (plan.rules !== 'iptables') return skipped(plan.rules === 'daemon' ? 'rtpengine ≥ mr12 manages nftables itself' : 'userspace forwarding needs no rule');
    const backend = cfg.iptablesBackend === 'auto' ? await detectBackend(ctx.runner) : { backend: cfg.iptablesBackend, reason: 'given' };
    const r = new ForwardingRules(createIptables(ctx.runner, backend.backend), { table: plan.table, addresses: ctx.mediaIps, portMin: cfg.portMin, portMax: cfg.portMax, target: cfg.iptablesTarget }, ctx.log);
    await r.apply();
    // A lost lease leaves the chain to the table's next holder (lease.ts).
    return done(`chain ${r.chain} (${backend.backend}: ${backend.reason})${cfg.iptablesTarget !== 'RTPENGINE' ? `, target swapped to ${cfg.iptablesTarget}` : ''}`, async () => { if (!ctx.allocationLost) await r.remove(); });
  },
};

/** Exec mode: spawn (or reattach), wait for its pong, and make sure the pong is our child's. */
async function startDaemon(ctx: StartContext, args: string[], pidFile: string): Promise<{ proc: SupervisedRtpengine; adopted: boolean }> {
  const { cfg, ngUp } = ctx;
  const r = await adoptOrSpawn({ pidFile, binary: cfg.rtpengineBinary, args, log: ctx.log.child({ component: 'rtpengine' }), clock: ctx.clock, ng: ngUp });
  const died = new AbortController();
  void r.proc.exited.then(() => died.abort());
  try {
    await waitNgReady(ngUp.host, ngUp.port, { timeoutMs: cfg.rtpengineReadySeconds * 1000, clock: ctx.clock, abort: died.signal });
    if (!died.signal.aborted) await assertNgPortOwner(ngUp.host, ngUp.port, r.proc.pid);
  } catch (e) {
    await r.proc.stop();
    await removePidFile(pidFile);
    if (!died.signal.aborted) throw e;
    const st = await r.proc.exited;
    throw new SidecarError('RTPENGINE_EXITED', { code: st.code, signal: st.signal, tail: r.proc.tail().slice(-1500) });
  }
  return r;
}

/** Exec mode: rtpengine under a supervisor that restarts it (supervisor.ts, #15 defect 3). */
function supervise(ctx: StartContext, first: SupervisedRtpengine, args: string[], pidFile: string): RtpengineSupervisor {
  return new RtpengineSupervisor(first, {
    clock: ctx.clock, log: ctx.log, maxRestarts: ctx.cfg.rtpengineRestarts, backoff: { timeoutMs: Infinity, initialDelayMs: 500, maxDelayMs: 10_000 },
    start: async () => (await startDaemon(ctx, args, pidFile)).proc,
    shouldRestart: () => !ctx.life.terminating,
    onDown: (reason) => ctx.proxy?.upstreamGone(reason),
    onUp: () => ctx.proxy?.upstreamBack(),
    onGiveUp: (err) => { ctx.log.error({ pod: ctx.pod, code: err.code }, err.message); ctx.life.fail(err.message, err.exitCode); },
    hooks: ctx.restartHooks,
  });
}

/** rtpengine: a config file for a separate container, or exec + supervise. */
const rtpengine: Step = {
  name: 'rtpengine',
  async up(ctx) {
    const { cfg } = ctx;
    const opts = rtpengineOptions({
      plan: ctx.plan!, addresses: ctx.mediaIps, interfaceName: cfg.interfaceName || undefined, advertised: cfg.advertisedAddress || undefined,
      ngHost: ctx.ngUp.host, ngPort: ctx.ngUp.port, portMin: cfg.portMin, portMax: cfg.portMax, extra: { 'delete-delay': cfg.deleteDelaySeconds, ...ctx.persistence?.options, ...cfg.rtpengineOptions },
    });
    if (cfg.rtpengineMode === 'config') {
      await writeFileAtomic(cfg.rtpengineConfig, renderConfig(opts, `written by rtpengine-k8s sidecar for ${ctx.pod} (uid ${cfg.podUid})`), { mkdir: true });
      return done(`config written to ${cfg.rtpengineConfig}`);
    }
    const args = renderArgs(opts);
    const pidFile = join(cfg.runDir, `rtpengine-${cfg.podUid}.pid`);
    const tStart = ctx.clock.monotonic();
    const { proc, adopted } = await startDaemon(ctx, args, pidFile);
    const sup = ctx.supervisor = supervise(ctx, proc, args, pidFile);
    ctx.excludedMs += ctx.clock.monotonic() - tStart;
    return done(`${adopted ? 'reattached to' : 'started'} pid ${proc.pid}: ${args.join(' ')}`, async () => { await sup.stop(); await removePidFile(pidFile); });
  },
};

const proxy: Step = {
  name: 'ng proxy',
  async up(ctx) {
    const p = await startNgProxy(ctx.cfg, { log: ctx.log, registry: ctx.registry, clock: ctx.clock, lifecycle: ctx.life });
    ctx.proxy = p;
    return done(`listening on ${p.addresses.map((a) => `${a.host}:${a.port}`).join(', ')} → ${ctx.cfg.ngUpstream}`, () => p.close());
  },
};

const deletionCost: Step = {
  name: 'pod-deletion-cost',
  async up(ctx) {
    const { cfg } = ctx;
    if (!cfg.deletionCost) return skipped('disabled (--no-deletion-cost)');
    let kube = ctx.kube;
    if (!kube) {
      try {
        // Only for pod-deletion-cost: without it the sidecar never loads @kubernetes/client-node.
        const { createKubeClient, kubeConfigFrom } = await import('../kube/client.js');
        kube = createKubeClient(kubeConfigFrom({ kubeconfig: cfg.kubeconfig || undefined }));
      } catch (e) {
        ctx.log.warn({ err: (e as Error).message }, 'no Kubernetes API access: pod-deletion-cost stays unmanaged');
        return skipped('no Kubernetes API access');
      }
    }
    const c = new DeletionCost({ kube, namespace: cfg.podNamespace, pod: cfg.podName, clock: ctx.clock, log: ctx.log, intervalMs: cfg.deletionCostIntervalSeconds * 1000, registry: ctx.registry });
    ctx.cost = c;
    const sessions = ctx.proxy!.sessions;
    const onChange = (n: number) => c.update(n);
    sessions.on('change', onChange);
    c.update(sessions.count());
    if (ctx.life.draining) void c.drain();
    return done(`bucketed, at most every ${cfg.deletionCostIntervalSeconds} s`, async () => { sessions.off('change', onChange); await c.close(); });
  },
};

/** The control server (/metrics, /readyz, /status, drain) and the file `rtpengine-k8s status` reads. */
const control: Step = {
  name: 'control server',
  async up(ctx) {
    const { cfg } = ctx;
    const p = ctx.proxy!;
    const target = {
      ready: (): Readiness => {
        const r = p.ready();
        const ph = ctx.life.phase;
        return ph === 'stopping' || ph === 'stopped' || ph === 'starting' ? { ready: false, reasons: [...r.reasons, `sidecar ${ph}`] } : r;
      },
      status: () => ctx.status(),
      drain: (o: { deadlineMs?: number; trigger: string }) => p.drain(o),
      drained: () => p.drained(),
    };
    const listen = parseHostPort(cfg.controlListen)!;
    const server = await startControlServer({ host: listen.host, port: listen.port, registry: ctx.registry, target, log: ctx.log, allowRemoteDrain: cfg.controlRemoteDrain, drainToken: cfg.controlDrainToken });
    ctx.control = server;
    const infoFile = sidecarFileName(cfg.runDir, cfg.podUid);
    try {
      await writeFileAtomic(infoFile, JSON.stringify({ pod: ctx.pod, uid: cfg.podUid, control: server.url }), { mkdir: true });
    } catch (e) { await server.close(); throw e; }
    return done(server.url, async () => { await server.close(); await unlink(infoFile).catch(() => undefined); });
  },
};

/** A drain started here before a restart (HTTP/CLI, pod not terminating) still holds. */
const marker: Step = {
  name: 'drained marker',
  async up(ctx) {
    const { cfg } = ctx;
    const m = await readDrainedMarker(cfg.runDir, cfg.podUid);
    if (!m) return skipped('none');
    const path = drainedMarkerName(cfg.runDir, cfg.podUid);
    ctx.log.warn({ pod: ctx.pod, marker: path, trigger: m.trigger, since: m.at ? new Date(m.at).toISOString() : undefined },
      'this pod was drained before the restart: coming back drained (load limit to new calls); delete the pod, or remove the marker and restart the container, to serve again');
    ctx.life.restoreMarker(path);
    ctx.life.requestDrain({ trigger: `restart (drained by ${m.trigger})` });
    return done(`${path}: drained by ${m.trigger} before a restart`);
  },
};

export const START_STEPS: readonly Step[] = [version, acquire, forwarding, address, rules, persistenceStep, rtpengine, proxy, restoreStep, deletionCost, control, marker];

export type { StartContext };
