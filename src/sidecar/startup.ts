// Start-up as a list of steps (version, acquire, address, rules, rtpengine, proxy, deletion cost,
// control, marker), each `up(ctx)` returning its own undo. runSteps() records outcomes for /status
// and, on a failure, runs the undos done so far in reverse; teardown runs them all in reverse.
import type { Registry } from 'prom-client';
import type { AllocationView } from '../allocator/wire.js';
import type { Clock } from '../clock.js';
import type { Runner } from '../exec.js';
import type { Logger } from '../log.js';
import type { Era, ForwardingPlan } from './rtpengine.js';
import type { RtpengineSupervisor, RestartHooks } from './supervisor.js';
import type { AllocatorPort } from './acquire.js';
import type { NgProxy } from './proxy.js';
import type { DeletionCost } from './deletion-cost.js';
import type { ControlServer } from './http.js';
import type { SidecarLifecycle } from './lifecycle.js';
import type { SidecarConfig } from './options.js';
import type { ProxyConfig } from './proxy-options.js';
import type { KubePort } from '../kube/client.js';
import type { PersistenceState } from '../persistence/step.js';

export type FullSidecarConfig = SidecarConfig & ProxyConfig;

export interface StepRecord { step: string; outcome: 'done' | 'skipped' | 'failed'; detail: string; /** ms since start when the step ended. */ atMs: number }

/** What the steps share: inputs, then each step's result for the later ones (and for teardown). */
export interface StartContext {
  cfg: FullSidecarConfig;
  log: Logger;
  registry: Registry;
  clock: Clock;
  runner: Runner;
  allocator: AllocatorPort;
  kube?: Pick<KubePort, 'patchPodAnnotations'>;
  signal?: AbortSignal;
  life: SidecarLifecycle;
  pod: string;
  ngUp: { host: string; port: number };
  /** ms of rtpengine's own start-up (left out of the sidecar's ready time). */
  excludedMs: number;
  /** What Release tells the allocator (teardown sets the real reason). */
  releaseReason: string;
  era?: Era;
  kernel?: { present: boolean; reason: string };
  allocation?: AllocationView;
  /** The lease was lost and the table may be another pod's: leave its rules alone at teardown. */
  allocationLost?: boolean;
  plan?: ForwardingPlan;
  mediaIps: string[];
  /** Exec mode: rtpengine and its restarts. */
  supervisor?: RtpengineSupervisor;
  /** Exec mode: what runs after a restart, before traffic (call restore plugs in here). */
  restartHooks?: RestartHooks;
  proxy?: NgProxy;
  cost?: DeletionCost;
  control?: ControlServer;
  /** Set by the persistence step when rtpengine gets --redis (src/persistence). */
  persistence?: PersistenceState;
  /** Record a step outcome that is not a start-up step (linger, rtpengine stopped, lease). */
  record(step: string, outcome: StepRecord['outcome'], detail: string): void;
  /** The sidecar's status (for the control server). */
  status(): Record<string, unknown>;
}

export interface StepOutcome { step?: string; outcome: 'done' | 'skipped'; detail: string }
export interface StepResult { outcomes: StepOutcome[]; undo?: () => Promise<unknown> }

export interface Step {
  name: string;
  up(ctx: StartContext): Promise<StepResult>;
}

export const done = (detail: string, undo?: () => Promise<unknown>, step?: string): StepResult => ({ outcomes: [{ step, outcome: 'done', detail }], undo });
export const skipped = (detail: string, step?: string): StepResult => ({ outcomes: [{ step, outcome: 'skipped', detail }] });

/** The undos of the steps that ran, newest first when run. */
export class UndoStack {
  private readonly items: Array<{ what: string; fn: () => Promise<unknown> }> = [];
  push(what: string, fn: () => Promise<unknown>): void { this.items.push({ what, fn }); }
  /** Runs every undo newest first; a failing one is logged and the rest still run. */
  async unwind(log: Logger): Promise<void> {
    for (const u of this.items.splice(0).reverse()) {
      try { await u.fn(); } catch (e) { log.error({ step: u.what, err: (e as Error).message }, 'clean-up step failed'); }
    }
  }
}

/** Runs the steps in order; a failure records it, unwinds what was done, and rethrows. */
export async function runSteps(steps: readonly Step[], ctx: StartContext, undo: UndoStack): Promise<void> {
  for (const s of steps) {
    let r: StepResult;
    try {
      r = await s.up(ctx);
    } catch (e) {
      ctx.record(s.name, 'failed', (e as Error).message);
      await undo.unwind(ctx.log);
      throw e;
    }
    if (r.undo) undo.push(s.name, r.undo);
    for (const o of r.outcomes) ctx.record(o.step ?? s.name, o.outcome, o.detail);
  }
}
