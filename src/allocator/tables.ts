// Table IDs for xt_RTPENGINE / nft_rtpengine: 0–63, host-global, so unique per node.
// Pure: picks the least-recently-released free ID; the store persists, kernel.ts checks /proc.
import { AllocError } from '../errors.js';

export const KERNEL_MAX_TABLES = 64;

export interface TableRange { min: number; max: number }

/** `"0-63"`, `"8-15"` or `"5"` → range inside 0–63; anything else → ALLOC_INVALID_ARGUMENT. */
export function parseTableRange(text: string): TableRange {
  const m = /^\s*(\d{1,2})\s*(?:-\s*(\d{1,2}))?\s*$/.exec(text);
  const min = m ? Number(m[1]) : NaN;
  const max = m ? Number(m[2] ?? m[1]) : NaN;
  if (!m || min > max || max >= KERNEL_MAX_TABLES) {
    throw new AllocError('ALLOC_INVALID_ARGUMENT', { field: 'table-range', reason: `must be 'MIN-MAX' inside 0-${KERNEL_MAX_TABLES - 1} with MIN <= MAX, got '${text}'` });
  }
  return { min, max };
}

export const rangeSize = (r: TableRange): number => r.max - r.min + 1;
export const rangeText = (r: TableRange): string => `${r.min}-${r.max}`;

export interface PickInput {
  range: TableRange;
  /** IDs held by any of our allocations (active, releasing, busy-table). */
  held: ReadonlySet<number>;
  /** IDs `/proc/rtpengine/list` shows (someone's daemon, or a leftover). */
  inKernel: ReadonlySet<number>;
  /** IDs another writer claimed (Kubernetes store conflicts). */
  foreign: ReadonlySet<number>;
  /** ID → wall-clock ms of its last release; absent = never released. */
  releasedAt: Readonly<Record<string, number>>;
}

/**
 * The free ID released longest ago (never-released first, then lowest ID), so an ID a lingering
 * old holder might still touch is reused last. undefined when none is free.
 */
export function pickTable(p: PickInput): number | undefined {
  let best: number | undefined;
  let bestAt = Infinity;
  for (let t = p.range.min; t <= p.range.max; t++) {
    if (p.held.has(t) || p.inKernel.has(t) || p.foreign.has(t)) continue;
    const at = p.releasedAt[String(t)] ?? 0;
    if (at < bestAt) { best = t; bestAt = at; }
  }
  return best;
}

/** IDs in the range nobody holds or shows in the kernel. */
export function freeTables(p: Omit<PickInput, 'releasedAt'>): number {
  let n = 0;
  for (let t = p.range.min; t <= p.range.max; t++) if (!p.held.has(t) && !p.inKernel.has(t) && !p.foreign.has(t)) n++;
  return n;
}
