// A stepped Clock for tests: time moves only when the test calls advance(), and every timer due
// fires in order, with the promise chains it starts run to rest before the next one.
import type { Clock, Timer } from '../../src/clock.js';

interface Entry { at: number; seq: number; fn: () => void; every?: number; cancelled: boolean }

/** Lets queued promise callbacks and immediates run (no wall-clock time passes on purpose). */
export async function settle(turns = 3): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((r) => setImmediate(r));
}

export class SteppedClock implements Clock {
  private t = 0;
  private seq = 0;
  private timers: Entry[] = [];

  constructor(private readonly wallStart = Date.UTC(2026, 0, 1)) {}

  now(): number { return this.wallStart + this.t; }
  monotonic(): number { return this.t; }

  setTimeout(fn: () => void, ms: number): Timer { return this.add(fn, ms); }
  setInterval(fn: () => void, ms: number): Timer { return this.add(fn, ms, Math.max(1, ms)); }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const t = this.add(done, ms);
      function done() { t.cancel(); signal?.removeEventListener('abort', done); resolve(); }
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /** Timers not yet fired or cancelled. */
  get pending(): number { return this.timers.filter((e) => !e.cancelled).length; }

  /** Milliseconds until the next timer, or undefined when none is armed. */
  nextIn(): number | undefined {
    const live = this.timers.filter((e) => !e.cancelled);
    if (!live.length) return undefined;
    return Math.min(...live.map((e) => e.at)) - this.t;
  }

  /** Moves time forward by `ms`, firing every timer that falls due (in order) on the way. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await settle();
    for (;;) {
      const due = this.timers.filter((e) => !e.cancelled && e.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.t = Math.max(this.t, due.at);
      if (due.every !== undefined) due.at += due.every; else due.cancelled = true;
      due.fn();
      await settle();
    }
    this.t = end;
    this.timers = this.timers.filter((e) => !e.cancelled);
    await settle();
  }

  private add(fn: () => void, ms: number, every?: number): Timer {
    const e: Entry = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, every, cancelled: false };
    this.timers.push(e);
    return { cancel: () => { e.cancelled = true; } };
  }
}
