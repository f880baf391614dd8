// rtpengine's health as the proxy sees it: null until the first ping answers, up on a pong, down
// only after `failures` health pings in a row fail. A forwarded request's timeout is that
// request's failure, never "rtpengine down" (#15 defect 2): it only asks for a ping now.
import type { Clock, Timer } from '../clock.js';
import type { Logger } from '../log.js';
import { NgError, isCoded } from '../errors.js';
import { scanReplyResult } from '../ng/scan.js';
import type { NgUpstream } from '../ng/types.js';

const PING = Buffer.from('d7:command4:pinge');

export interface UpstreamHealthOptions {
  upstream: NgUpstream;
  clock: Clock;
  log: Logger;
  name: string;
  intervalMs: number;
  /** One ping's timeout (ms). */
  timeoutMs: number;
  /** Consecutive failed pings that make rtpengine down. */
  failures: number;
  /** Called on every change of health. */
  onChange(up: boolean, reason: string | undefined): void;
  /** Called once, when the first ping has an outcome (answered or not). */
  onFirstOutcome(): void;
}

export const failureReason = (e: unknown): string => (isCoded(e) ? e.ngReason : (e as Error).message);

export class UpstreamHealth {
  /** null: not known yet (no ping answered, none failed `failures` times). */
  up: boolean | null = null;
  reason: string | undefined;
  firstOutcome = false;
  private failed = 0;
  private busy = false;
  private closed = false;
  private timer: Timer | undefined;

  constructor(private readonly o: UpstreamHealthOptions) {}

  start(): void {
    this.timer = this.o.clock.setInterval(() => void this.ping(), this.o.intervalMs);
    void this.ping();
  }

  /** Set while rtpengine is known gone (exec mode: it exited and is being restarted): the reason. */
  held: string | undefined;

  /** rtpengine is known gone: down at once, pings ignored until release(). */
  hold(reason: string): void {
    this.held = reason;
    if (this.up === false) { this.reason = reason; return; }
    this.set(false, reason);
  }

  /** rtpengine is back: the next ping decides. */
  release(): void {
    this.held = undefined;
    this.failed = 0;
    void this.ping();
  }

  /** A ping now, unless one is out. */
  async ping(): Promise<void> {
    if (this.busy || this.closed || this.held !== undefined) return;
    this.busy = true;
    try {
      const res = await this.o.upstream.request(PING, { timeoutMs: this.o.timeoutMs, retries: 1 });
      const { result } = scanReplyResult(res.reply);
      if (result !== 'pong') throw new NgError('NG_BAD_REPLY', { reason: `ping answered ${String(result)}` });
      if (this.held !== undefined) return;
      this.failed = 0;
      this.set(true, undefined);
    } catch (e) {
      if (this.closed || this.held !== undefined) return;
      if (++this.failed >= this.o.failures) this.set(false, failureReason(e));
    } finally {
      this.busy = false;
      if (!this.firstOutcome) {
        this.firstOutcome = true;
        if (!this.closed) this.o.onFirstOutcome();
      }
    }
  }

  close(): void {
    this.closed = true;
    this.timer?.cancel();
  }

  private set(up: boolean, reason: string | undefined): void {
    if (up === this.up) return;
    this.up = up;
    this.reason = up ? undefined : reason;
    if (up) this.o.log.info({ upstream: this.o.name }, 'rtpengine answers: new calls accepted');
    else this.o.log.warn({ upstream: this.o.name, reason, failedPings: this.failed }, 'rtpengine down: new offers get load limit; requests for known calls are still forwarded');
    this.o.onChange(up, this.reason);
  }
}
