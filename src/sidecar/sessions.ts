// Calls held by this rtpengine, keyed by call-id: learned from the proxy's own traffic (offer,
// answer, delete replies) for instant drain decisions, and reconciled with rtpengine's `list`
// so calls rtpengine timed out or that predate this process are accounted for.
import { EventEmitter } from 'node:events';
import type { Clock } from '../clock.js';

export interface Session {
  /** Monotonic ms when the proxy first saw the call (or reconciliation found it). */
  createdAt: number;
  /** Monotonic ms of the last successful command for the call. */
  updatedAt: number;
  fromTag?: string;
  toTag?: string;
  /** 'proxy' = learned from a reply; 'rtpengine' = found by reconciliation. */
  source: 'proxy' | 'rtpengine';
}

export interface ReconcileResult { added: number; removed: number; count: number }

export interface SessionRegistryOptions {
  clock: Clock;
  /**
   * How long a deleted call is still "here" (rtpengine keeps it for its delete-delay, and `list`
   * still shows it): not re-added by reconciliation, and still forwarded while draining.
   */
  tombstoneMs?: number;
}

/**
 * Emits 'change' (count: number) whenever the number of tracked calls changes.
 * Memory: one Map entry + one small object per call (see bench: 100,000 calls).
 */
export class SessionRegistry extends EventEmitter {
  private readonly calls = new Map<string, Session>();
  private readonly tombstones = new Map<string, number>();
  private readonly clock: Clock;
  private readonly tombstoneMs: number;
  private forgets = 0;

  constructor(opts: SessionRegistryOptions) {
    super();
    this.clock = opts.clock;
    this.tombstoneMs = opts.tombstoneMs ?? 35_000;
  }

  count(): number { return this.calls.size; }

  get(callId: string): Session | undefined { return this.calls.get(callId); }

  /** Live, or deleted but still inside rtpengine's delete-delay: the call is on this node. */
  has(callId: string): boolean {
    if (this.calls.has(callId)) return true;
    const until = this.tombstones.get(callId);
    if (until === undefined) return false;
    if (until > this.clock.monotonic()) return true;
    this.tombstones.delete(callId);
    return false;
  }

  /** A call-creating command succeeded (offer, publish, create, transform), or answer/re-offer. */
  learn(callId: string, tags: { fromTag?: string; toTag?: string } = {}): void {
    const now = this.clock.monotonic();
    const s = this.calls.get(callId);
    if (s) {
      s.updatedAt = now;
      if (tags.fromTag !== undefined && s.fromTag === undefined) s.fromTag = tags.fromTag;
      if (tags.toTag !== undefined) s.toTag = tags.toTag;
      return;
    }
    this.tombstones.delete(callId);
    // All fields in one literal: every session has the same shape (no transitions per call).
    this.calls.set(callId, { createdAt: now, updatedAt: now, fromTag: tags.fromTag, toTag: tags.toTag, source: 'proxy' });
    this.emit('change', this.calls.size);
  }

  /** A delete succeeded: the call leaves the count now, but stays "here" for the delete-delay. */
  forget(callId: string): boolean {
    const existed = this.calls.delete(callId);
    this.tombstones.set(callId, this.clock.monotonic() + this.tombstoneMs);
    if (++this.forgets % 1024 === 0) this.pruneTombstones();
    if (existed) this.emit('change', this.calls.size);
    return existed;
  }

  /**
   * Make the registry equal to rtpengine's `list` (call-ids), except: calls the proxy learned
   * after `startedAt` (the list request went out before they existed) are kept, and tombstoned
   * (recently deleted) calls are not re-added.
   */
  reconcile(listed: Iterable<string>, startedAt: number): ReconcileResult {
    this.pruneTombstones();
    const seen = new Set<string>();
    let added = 0;
    let removed = 0;
    const now = this.clock.monotonic();
    for (const id of listed) {
      seen.add(id);
      if (this.calls.has(id) || this.tombstones.has(id)) continue;
      this.calls.set(id, { createdAt: now, updatedAt: now, fromTag: undefined, toTag: undefined, source: 'rtpengine' });
      added++;
    }
    for (const [id, s] of this.calls) {
      if (seen.has(id) || s.updatedAt >= startedAt) continue;
      this.calls.delete(id);
      removed++;
    }
    if (added || removed) this.emit('change', this.calls.size);
    return { added, removed, count: this.calls.size };
  }

  /** Call-ids, oldest first (for /status and debugging; bounded by `limit`). */
  ids(limit = Infinity): string[] {
    const out: string[] = [];
    for (const id of this.calls.keys()) {
      if (out.length >= limit) break;
      out.push(id);
    }
    return out;
  }

  tombstoneCount(): number { return this.tombstones.size; }

  private pruneTombstones(): void {
    const now = this.clock.monotonic();
    for (const [id, until] of this.tombstones) if (until <= now) this.tombstones.delete(id);
  }
}
