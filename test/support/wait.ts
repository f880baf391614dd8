// waitFor: the one way tests wait for something to happen (a condition polled until true), instead
// of sleeping for a guessed time. The timeout only bounds a hung test; it is never a speed check.

export interface WaitOptions { timeoutMs?: number; intervalMs?: number }

/** Resolves when `cond` returns true (it may be async); throws naming `what` when it never does. */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, o: WaitOptions = {}): Promise<void> {
  const end = Date.now() + (o.timeoutMs ?? 30_000);
  const every = o.intervalMs ?? 10;
  // A referenced timer: the waiting test keeps the loop alive even when everything it waits on is unref'd.
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** The value `get` returns once it is not undefined. */
export async function waitForValue<T>(what: string, get: () => T | undefined | Promise<T | undefined>, o: WaitOptions = {}): Promise<T> {
  let v: T | undefined;
  await waitFor(what, async () => (v = await get()) !== undefined, o);
  return v as T;
}

/** Whether `p` has settled once everything already queued has run (no time passes). */
export async function isSettled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(() => { done = true; }, () => { done = true; });
  for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
  return done;
}
