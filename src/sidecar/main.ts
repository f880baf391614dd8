// The `sidecar` command: the start-up steps (steps.ts) under one lifecycle (lifecycle.ts); on
// SIGTERM: drain → linger (Kamailio drops us first) → rtpengine gone → rules → address → Release →
// exit 0, each part removed by the undo its step returned. Crash-only: a restart reattaches.
import type { Registry } from 'prom-client';
import { defineCommand } from '../command.js';
import { AllocatorClient } from '../allocator/client.js';
import type { AllocationView } from '../allocator/wire.js';
import type { KubePort } from '../kube/client.js';
import { isCoded } from '../errors.js';
import type { RestartHooks } from './supervisor.js';
import type { Logger } from '../log.js';
import { createRegistry } from '../metrics.js';
import { systemClock, type Clock } from '../clock.js';
import { processRunner, type Runner } from '../exec.js';
import type { AllocatorPort } from './acquire.js';
import { ngPing, type Era } from './rtpengine.js';
import { sidecarOptions } from './options.js';
import { proxyOptions, parseHostPort } from './proxy-options.js';
import { SidecarLifecycle, type Phase, type StopRequest } from './lifecycle.js';
import { writeDrainedMarker } from './marker.js';
import { runSteps, UndoStack, type FullSidecarConfig, type StartContext, type StepRecord } from './startup.js';
import { START_STEPS } from './steps.js';

export type { FullSidecarConfig, StepRecord };
export { sidecarFileName, drainedMarkerName, readDrainedMarker, type DrainedMarker } from './marker.js';

/** The lifecycle's phase (lifecycle.ts): `drained` stays up answering; `lingering` then ends. */
export type SidecarState = Phase;

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
  /** Exec mode: how often rtpengine was restarted after dying. */
  rtpengineRestarts?: number;
  /** rtpengine was started with --redis/--redis-write (calls survive its crash); false when not configured or refused at start. */
  persistence: boolean;
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
  /** Exec mode: run after rtpengine was restarted, before it gets traffic (call restore). */
  restartHooks?: RestartHooks;
}

export interface SidecarHandle {
  allocation: AllocationView;
  /** ms from start to ready, excluding rtpengine's own start-up (exec mode). */
  readyMs: number;
  status(): SidecarStatus;
  /** SIGTERM path: drain, linger, then tear down. Resolves with the exit code. Idempotent. */
  stop(trigger?: string): Promise<number>;
  /** Resolves with the exit code when the sidecar ends (stop(), or by itself: rtpengine died). */
  done: Promise<number>;
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

function statusOf(ctx: StartContext, steps: StepRecord[]): SidecarStatus {
  const ls = ctx.life.status();
  return {
    pod: ctx.pod, uid: ctx.cfg.podUid, state: ls.phase, table: ctx.allocation?.table, mediaIps: ctx.mediaIps,
    ng: ctx.proxy?.addresses.map((a) => `${a.host}:${a.port}`) ?? [], control: ctx.control?.url,
    sessions: ctx.proxy?.sessions.count() ?? 0, drainComplete: ls.drainComplete, terminating: ls.terminating, drainLingerSeconds: ctx.cfg.drainLingerSeconds,
    ...(ls.lingerUntil !== undefined ? { lingerUntil: ls.lingerUntil } : {}), ...(ls.drainedMarker ? { drainedMarker: ls.drainedMarker } : {}),
    kernelForwarding: ctx.plan?.kernel ?? false, era: ctx.era, rtpenginePid: ctx.supervisor?.current.pid, rtpengineRestarts: ctx.supervisor?.restarts, persistence: ctx.persistence !== undefined, steps: [...steps],
    proxy: ctx.proxy?.status(),
  };
}

/** Config mode: the separate rtpengine's rules, address and table are released only once it is gone. */
async function awaitConfigModeRtpengine(ctx: StartContext): Promise<void> {
  const { cfg, log } = ctx;
  if (cfg.rtpengineMode !== 'config' || cfg.rtpengineStopWaitSeconds <= 0) return;
  log.info({ pod: ctx.pod, ng: cfg.ngUpstream, deadlineS: cfg.rtpengineStopWaitSeconds }, 'config mode: waiting for rtpengine to stop before removing rules and address and releasing');
  const w = await waitRtpengineGone(ctx.ngUp.host, ctx.ngUp.port, { deadlineMs: cfg.rtpengineStopWaitSeconds * 1000, clock: ctx.clock, log });
  if (w.gone) {
    log.info({ pod: ctx.pod, waitedMs: w.waitedMs }, 'config mode: rtpengine stopped answering ping');
    ctx.record('rtpengine stopped', 'done', `no ping answer after ${w.waitedMs} ms`);
  } else {
    log.warn({ pod: ctx.pod, waitedMs: w.waitedMs }, 'config mode: rtpengine still answers ping after the deadline; removing rules and address and releasing anyway');
    ctx.record('rtpengine stopped', 'failed', `still answering after ${w.waitedMs} ms (--rtpengine-stop-wait-seconds)`);
  }
}

/** After start-up: what the lifecycle's events do to the parts (deletion cost, rtpengine's death, teardown). */
function wireLifecycle(ctx: StartContext, undo: UndoStack): Promise<number> {
  const { life, log } = ctx;
  life.on('phase', (s: { drain: { phase: string }; phase: Phase }) => {
    if (s.drain.phase !== 'serving') void ctx.cost?.drain();
  });
  return life.stopRequested().then(async (req: StopRequest) => {
    const lingerUntil = life.status().lingerUntil;
    if (lingerUntil !== undefined) ctx.record('linger', 'done', `answered until ${new Date(lingerUntil).toISOString()} after the drain completed`);
    log.info({ pod: ctx.pod, why: req.why }, 'stopping: rtpengine, rules, address, then release');
    if (req.code === 0) await awaitConfigModeRtpengine(ctx);
    ctx.releaseReason = req.why;
    await undo.unwind(log);
    life.stopped();
    log.info({ pod: ctx.pod, code: req.code }, 'sidecar stopped');
    return req.code;
  });
}

/** Runs the start-up steps; on a failure midway undoes what was done and rethrows. */
export async function startSidecar(cfg: FullSidecarConfig, deps: SidecarDeps): Promise<SidecarHandle> {
  const clock = deps.clock ?? systemClock;
  const t0 = clock.monotonic();
  const log = deps.log.child({ component: 'sidecar' });
  const pod = `${cfg.podNamespace}/${cfg.podName}`;
  const steps: StepRecord[] = [];
  const life = new SidecarLifecycle({
    clock, log, drainDeadlineMs: cfg.drainDeadlineSeconds * 1000, lingerMs: cfg.drainLingerSeconds * 1000, upstreamDownMs: cfg.ngDrainUpstreamDownMs,
    writeMarker: (trigger) => writeDrainedMarker(cfg.runDir, { pod, uid: cfg.podUid, trigger, at: clock.now() }),
  });
  const undo = new UndoStack();
  const allocator = deps.allocator ?? new AllocatorClient({ socket: cfg.allocatorSocket, tokenFile: cfg.allocatorTokenFile || undefined });
  if (!deps.allocator) undo.push('close allocator client', async () => (allocator as AllocatorClient).close());
  const ctx: StartContext = {
    cfg, log, registry: deps.registry, clock, runner: deps.runner ?? processRunner, allocator, kube: deps.kube, signal: deps.signal, restartHooks: deps.restartHooks,
    life, pod, ngUp: parseHostPort(cfg.ngUpstream)!, excludedMs: 0, releaseReason: 'sidecar start-up failed', mediaIps: [],
    record: (step, outcome, detail) => { steps.push({ step, outcome, detail, atMs: Math.round(clock.monotonic() - t0) }); },
    status: () => statusOf(ctx, steps) as unknown as Record<string, unknown>,
  };
  try {
    await runSteps(START_STEPS, ctx, undo);
  } catch (e) {
    log.error({ pod, err: (e as Error).message, code: isCoded(e) ? e.code : undefined }, 'sidecar start-up failed; undid what was set up');
    life.close();
    throw e;
  }
  const done = wireLifecycle(ctx, undo);
  life.serve();
  const readyMs = clock.monotonic() - t0 - ctx.excludedMs;
  log.info({ pod, table: ctx.allocation!.table, mediaIps: ctx.mediaIps, kernel: ctx.plan!.kernel, era: ctx.era, mode: cfg.rtpengineMode, readyMs: Math.round(readyMs), control: ctx.control!.url }, 'sidecar ready');
  return {
    allocation: ctx.allocation!, readyMs, done,
    status: () => statusOf(ctx, steps),
    stop: (trigger = 'signal') => { life.terminate(trigger); return done; },
  };
}

export const sidecarCommand = defineCommand({
  name: 'sidecar',
  summary: 'per-pod sidecar: acquire table + media IP, set up rtpengine and kernel forwarding, proxy ng, drain on SIGTERM',
  options: { ...sidecarOptions, ...proxyOptions },
  async run(config, _positionals, ctx) {
    const registry = createRegistry({ labels: { pod: `${config.podNamespace}/${config.podName}` } });
    const handle = await startSidecar(config as FullSidecarConfig, { log: ctx.log, registry, signal: ctx.signal });
    if (ctx.signal.aborted) return handle.stop('signal');
    const onStop = () => { void handle.stop(`signal ${ctx.stopReason() ?? ''}`.trim()); };
    ctx.signal.addEventListener('abort', onStop, { once: true });
    return handle.done;
  },
});
