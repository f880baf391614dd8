// Exec mode: rtpengine under supervision. When it dies unexpectedly the ng port stays open (the
// proxy answers new offers `load limit` and known calls an error at once), it is restarted with
// bounded backoff and the same arguments (same table, same media IP), and the sidecar gives up
// only after `maxRestarts` failed restarts in a row. `afterRestart` is where call restore plugs in.
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import { SidecarError } from '../errors.js';
import type { RetryPolicy } from './acquire.js';
import { backoff } from '../backoff.js';
import type { ExitStatus, SupervisedRtpengine } from './rtpengine.js';

export interface RestartHooks {
  /**
   * A restarted rtpengine answers pings; before the proxy sends it traffic again. Redis-backed call
   * restore goes here. A throw counts as a failed restart.
   */
  afterRestart?(proc: SupervisedRtpengine, attempt: number): Promise<void>;
}

export interface SupervisorOptions {
  clock: Clock;
  log: Logger;
  /** Starts rtpengine with the sidecar's arguments; resolves once it answers ping on its ng port. */
  start(): Promise<SupervisedRtpengine>;
  maxRestarts: number;
  backoff: RetryPolicy;
  /** False while the sidecar is ending (terminating, lingering, stopping): no restart then. */
  shouldRestart(): boolean;
  /** rtpengine is gone; `reason` is the coded text the proxy answers known calls with. */
  onDown(reason: string): void;
  /** A restarted rtpengine is ready. */
  onUp(proc: SupervisedRtpengine): void;
  /** Restarts exhausted (or not allowed): the sidecar ends with this error. */
  onGiveUp(err: SidecarError): void;
  hooks?: RestartHooks;
}

export class RtpengineSupervisor {
  private proc: SupervisedRtpengine;
  private stopped = false;
  /** Restart attempts since rtpengine was last ready. */
  private failures = 0;
  /** Restarts that succeeded, in total (for /status). */
  restarts = 0;

  constructor(first: SupervisedRtpengine, private readonly o: SupervisorOptions) {
    this.proc = first;
    this.watch(first);
  }

  get current(): SupervisedRtpengine { return this.proc; }

  /** Stops rtpengine and any restart to come. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.proc.stop();
  }

  private watch(p: SupervisedRtpengine): void {
    void p.exited.then((st) => { if (!this.stopped && !p.stopping && p === this.proc) void this.exitedUnexpectedly(st); });
  }

  private async exitedUnexpectedly(st: ExitStatus): Promise<void> {
    const why = `code ${st.code}, signal ${st.signal}`;
    this.o.log.error({ code: st.code, signal: st.signal, tail: this.proc.tail().slice(-1500) }, 'rtpengine exited unexpectedly');
    if (!this.o.shouldRestart() || this.o.maxRestarts === 0) {
      this.o.onGiveUp(new SidecarError('RTPENGINE_EXITED', { code: st.code, signal: st.signal, tail: this.proc.tail().slice(-1500) }));
      return;
    }
    let reason = why;
    while (!this.stopped && this.failures < this.o.maxRestarts) {
      const attempt = ++this.failures;
      this.o.onDown(new SidecarError('RTPENGINE_RESTARTING', { why: reason, attempt, max: this.o.maxRestarts }).message);
      const wait = backoff(attempt, this.o.backoff);
      this.o.log.warn({ attempt, of: this.o.maxRestarts, inMs: wait, reason }, 'restarting rtpengine with the same table and media IP');
      await this.o.clock.sleep(wait);
      if (this.stopped || !this.o.shouldRestart()) break;
      try {
        await this.restartOnce(attempt);
        return;
      } catch (e) {
        reason = (e as Error).message;
        this.o.log.error({ attempt, err: reason }, 'rtpengine restart failed');
      }
    }
    if (!this.stopped) this.o.onGiveUp(new SidecarError('RTPENGINE_RESTARTS_EXHAUSTED', { attempts: this.failures, reason }));
  }

  private async restartOnce(attempt: number): Promise<void> {
    const p = await this.o.start();
    this.proc = p;
    this.watch(p);
    try {
      await this.o.hooks?.afterRestart?.(p, attempt);
    } catch (e) {
      await p.stop();
      throw e;
    }
    if (this.stopped) return;
    this.failures = 0;
    this.restarts++;
    this.o.log.info({ pid: p.pid, attempt }, 'rtpengine restarted: same table and media IP, ready again');
    this.o.onUp(p);
  }
}
