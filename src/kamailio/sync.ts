// The reconcile loop: EndpointSlice snapshots → desired nodes → db_text table → rtpengine.reload.
// Debounces flapping, coalesces changes inside Kamailio's 10 s reload window, never writes an
// empty table (keeps the last good one), verifies what Kamailio loaded with rtpengine.show, and asks
// draining pods' sidecars when their drain is complete (ADR 0041).
import { join } from 'node:path';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Clock, Timer } from '../clock.js';
import type { Logger } from '../log.js';
import { METRIC_PREFIX } from '../metrics.js';
import { ensureVersionRow, mtimeSeconds, readRtpengineTable, renderRtpengineTable, writeDbTextFile } from './dbtext.js';
import {
  desiredNodes, diffNodes, drainProbeTargets, selectedEndpoints,
  type DesiredNode, type DrainProbe, type DrainReport, type EndpointSlice, type EndpointSource, type PodAnnotations, type SelectOptions,
} from './endpoints.js';
import { isReloadTooSoon, showNodes, type KamailioRpc } from './jsonrpc.js';
import { backoff } from '../backoff.js';

export interface SyncOptions {
  /** db_text directory (the `text:///DIR` of the rtpengine db_url). */
  dbDir: string;
  /** Table (file) name; Kamailio's `table_name` modparam of rtpengine, default `rtpengine`. */
  table: string;
  select: SelectOptions;
  /** Quiet time after the last change before acting (flapping endpoints settle). */
  debounceMs: number;
  /** Upper bound on the debounce under a continuous stream of changes. */
  maxDelayMs: number;
  /** Kamailio refuses reloads closer than 10 s (whole seconds); keep a small margin. */
  reloadIntervalMs: number;
  /** First retry when Kamailio's RPC is unreachable (doubles up to reloadIntervalMs). */
  retryMs: number;
  /** Ask draining pods' sidecars this often whether the drain is complete (with a drainProbe). */
  drainPollMs?: number;
  /** The probe's own timeout (the real probe gets it; here it enters the linger check). */
  drainProbeTimeoutMs?: number;
}

export const defaultSyncOptions = { table: 'rtpengine', debounceMs: 300, maxDelayMs: 3000, reloadIntervalMs: 10_200, retryMs: 1000, drainPollMs: 2000, drainProbeTimeoutMs: 1000 } as const;

/**
 * The longest time from a sidecar completing its drain to Kamailio having dropped it: it is seen at
 * the next poll (interval + probe timeout), the debounce passes, and the reload waits for
 * Kamailio's window. A sidecar's --drain-linger-seconds must exceed this (ADR 0041).
 */
export function worstCaseRemovalMs(o: Pick<SyncOptions, 'debounceMs' | 'reloadIntervalMs' | 'drainPollMs' | 'drainProbeTimeoutMs'>): number {
  return (o.drainPollMs ?? defaultSyncOptions.drainPollMs) + (o.drainProbeTimeoutMs ?? defaultSyncOptions.drainProbeTimeoutMs) + o.debounceMs + o.reloadIntervalMs;
}

export interface SyncDeps {
  source: EndpointSource;
  rpc: KamailioRpc;
  clock: Clock;
  log: Logger;
  registry: Registry;
  /** When set, pods' set id / weight annotations override the configured ones. */
  podAnnotations?: PodAnnotations;
  /** Asks a pod's sidecar about its drain (needs select.controlPortName); absent: no probing. */
  drainProbe?: DrainProbe;
}

export interface SyncStatus {
  /** Rows in the table file as this process last wrote or read it. */
  table: DesiredNode[] | undefined;
  /** Kamailio has loaded `table` (checked with rtpengine.show or a successful reload). */
  loaded: boolean;
  desired: DesiredNode[] | undefined;
  reloads: number;
  lastReloadAt: number | undefined;
  /** What draining pods' sidecars last said, by URL. */
  drainReports: Record<string, DrainReport>;
}

type Key = Pick<DesiredNode, 'url' | 'setid' | 'weight'>;
const keyOf = (n: Key) => `${n.url}|${n.setid}|${n.weight}`;
const sameSet = (a: readonly Key[], b: readonly Key[]) => {
  if (a.length !== b.length) return false;
  const s = new Set(a.map(keyOf));
  return b.every((n) => s.has(keyOf(n)));
};
const label = (n: DesiredNode) => ({ pod: n.pod, url: n.url, ...(n.terminating ? { terminating: true } : {}), ...(n.draining ? { draining: true } : {}) });

export class KamailioSync {
  private readonly log: Logger;
  private readonly path: string;
  private table: DesiredNode[] | undefined;
  private loaded = false;
  private desired: DesiredNode[] | undefined;
  private pendingSince: number | undefined;
  private lastReloadAt: number | undefined;
  private nextRetryAt = 0;
  /** Unreachable-RPC reload failures in a row (the retry delay doubles with each, src/backoff.ts). */
  private reloadFailures = 0;
  private lastMtimeS: number | undefined;
  private timer: Timer | undefined;
  private running: Promise<void> | undefined;
  private dirty = false;
  private stopped = false;
  private reloads = 0;
  private snapshotSeq = 0;
  private readonly annotationCache = new Map<string, Record<string, string> | undefined>();
  private lastSlices: EndpointSlice[] | undefined;
  private readonly reports = new Map<string, DrainReport>();
  private readonly lingerWarned = new Set<string>();
  private probeTimer: Timer | undefined;
  private probing: Promise<boolean> | undefined;
  private readonly listeners = new Set<(s: SyncStatus) => void>();
  private readonly m: {
    nodes: Gauge; inSync: Gauge; reloads: Counter; failures: Counter; writes: Counter; sourceErrors: Counter; kept: Counter; probes: Counter;
  };

  constructor(private readonly o: SyncOptions, private readonly d: SyncDeps) {
    this.log = d.log.child({ component: 'kamailio-sync' });
    this.path = join(o.dbDir, o.table);
    const r = [d.registry];
    this.m = {
      nodes: new Gauge({ name: `${METRIC_PREFIX}kamailio_nodes`, help: 'rtpengine nodes in the Kamailio table file', registers: r }),
      inSync: new Gauge({ name: `${METRIC_PREFIX}kamailio_in_sync`, help: '1 when Kamailio has loaded the current table, 0 while a write or reload is pending', registers: r }),
      reloads: new Counter({ name: `${METRIC_PREFIX}kamailio_reloads_total`, help: 'successful rtpengine.reload calls', registers: r }),
      failures: new Counter({ name: `${METRIC_PREFIX}kamailio_reload_failures_total`, help: 'failed rtpengine.reload calls by reason (too_soon, fault, unreachable)', labelNames: ['reason'], registers: r }),
      writes: new Counter({ name: `${METRIC_PREFIX}kamailio_table_writes_total`, help: 'atomic writes of the table file', registers: r }),
      sourceErrors: new Counter({ name: `${METRIC_PREFIX}kamailio_endpoint_errors_total`, help: 'EndpointSlice list/watch failures (the table is kept as it was)', registers: r }),
      kept: new Counter({ name: `${METRIC_PREFIX}kamailio_empty_lists_ignored_total`, help: 'snapshots with no serving rtpengine that were not written (the last table was kept)', registers: r }),
      probes: new Counter({ name: `${METRIC_PREFIX}kamailio_drain_probes_total`, help: "GET /status to draining pods' sidecars by result (serving, draining, drained, failed)", labelNames: ['result'], registers: r }),
    };
  }

  /** Read the current table file, make sure the version row exists, and start watching. */
  async start(): Promise<void> {
    if (await ensureVersionRow(this.o.dbDir, this.o.table)) this.log.info({ dir: this.o.dbDir, table: this.o.table }, 'added the table version row to db_text version file');
    try {
      const rows = await readRtpengineTable(this.path);
      if (rows) this.table = rows.map((r) => ({ url: r.url, setid: r.setid, weight: r.weight, pod: '(from file)', ip: '', terminating: false }));
    } catch (e) {
      this.log.warn({ path: this.path, err: (e as Error).message }, 'existing table file is unreadable; it will be replaced with the first good list');
    }
    this.lastMtimeS = await mtimeSeconds(this.path);
    this.m.nodes.set(this.table?.length ?? 0);
    this.log.info({ path: this.path, rows: this.table?.length ?? 0 }, 'starting with the table file as found');
    this.d.source.start({
      onSnapshot: (slices) => { void this.onSnapshot(slices); },
      onError: (e) => this.onSourceError(e),
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    this.probeTimer?.cancel();
    await this.probing;
    await this.d.source.stop();
    await this.running;
  }

  status(): SyncStatus {
    return { table: this.table, loaded: this.loaded, desired: this.desired, reloads: this.reloads, lastReloadAt: this.lastReloadAt, drainReports: Object.fromEntries(this.reports) };
  }

  /** Called after every apply round (tests and the bench wait on it). */
  onApplied(fn: (s: SyncStatus) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private onSourceError(e: unknown): void {
    this.m.sourceErrors.inc();
    this.log.warn({ err: (e as Error)?.message ?? String(e), rows: this.table?.length ?? 0 }, 'EndpointSlice watch failed; keeping the last table');
  }

  private async annotations(slices: readonly EndpointSlice[]): Promise<Map<string, Record<string, string> | undefined> | undefined> {
    const lookup = this.d.podAnnotations;
    if (!lookup) return undefined;
    const out = new Map<string, Record<string, string> | undefined>();
    for (const e of selectedEndpoints(slices, this.o.select, this.tableUrls(), this.reports)) {
      const pod = `${e.namespace}/${e.name}`;
      if (!this.annotationCache.has(pod)) {
        try {
          this.annotationCache.set(pod, await lookup(e.namespace, e.name));
        } catch (err) {
          // Not cached: the next snapshot asks again. Meanwhile the configured defaults apply.
          this.log.warn({ pod, err: (err as Error).message }, 'could not read pod annotations; using the configured set id and weight');
        }
      }
      out.set(pod, this.annotationCache.get(pod));
    }
    return out;
  }

  /**
   * Asks the sidecars of draining endpoints in the table (ADR 0041). `onlyUnknown`: just those not
   * asked yet (a snapshot waits for them, so a live pod's HTTP drain never drops its row first).
   * A failed probe keeps what was known. Returns whether any report changed.
   */
  private async probeDrains(slices: readonly EndpointSlice[], onlyUnknown: boolean): Promise<boolean> {
    const probe = this.d.drainProbe;
    if (!probe || !this.o.select.controlPortName) return false;
    const targets = drainProbeTargets(slices, this.o.select, this.tableUrls());
    const wanted = new Set(targets.map((t) => t.url));
    let changed = false;
    for (const url of [...this.reports.keys()]) if (!wanted.has(url)) { this.reports.delete(url); changed = true; }
    const ask = onlyUnknown ? targets.filter((t) => !this.reports.has(t.url)) : targets;
    await Promise.all(ask.map(async (t) => {
      const st = await probe(t.ip, t.controlPort);
      this.m.probes.inc({ result: st?.report ?? 'failed' });
      if (!st) {
        this.log.debug({ pod: `${t.namespace}/${t.name}`, url: t.url, control: `${t.ip}:${t.controlPort}`, known: this.reports.get(t.url) }, 'sidecar did not answer /status; keeping what was known');
        return;
      }
      this.checkLinger(`${t.namespace}/${t.name}`, st.lingerSeconds);
      if (this.reports.get(t.url) !== st.report) {
        this.log.info({ pod: `${t.namespace}/${t.name}`, url: t.url, report: st.report, before: this.reports.get(t.url), terminating: t.terminating, ready: t.ready }, 'sidecar drain state');
        this.reports.set(t.url, st.report);
        changed = true;
      }
    }));
    return changed;
  }

  /** A sidecar that lingers less than our worst case vanishes before Kamailio drops it. */
  private checkLinger(pod: string, lingerSeconds: number | undefined): void {
    if (lingerSeconds === undefined || this.lingerWarned.has(pod)) return;
    const need = worstCaseRemovalMs(this.o);
    if (lingerSeconds * 1000 > need) return;
    this.lingerWarned.add(pod);
    this.log.warn({ pod, lingerSeconds, needMs: need, drainPollMs: this.o.drainPollMs, drainProbeTimeoutMs: this.o.drainProbeTimeoutMs, debounceMs: this.o.debounceMs, reloadIntervalMs: this.o.reloadIntervalMs },
      'sidecar --drain-linger-seconds is not above poll + probe timeout + debounce + reload window: it may stop answering before Kamailio drops it');
  }

  /** Polls while some endpoint in the table is draining; a changed report re-runs the last snapshot. */
  private scheduleProbe(): void {
    this.probeTimer?.cancel();
    this.probeTimer = undefined;
    if (this.stopped || !this.d.drainProbe || !this.lastSlices) return;
    if (!drainProbeTargets(this.lastSlices, this.o.select, this.tableUrls()).length && !this.reports.size) return;
    this.probeTimer = this.d.clock.setTimeout(() => {
      const slices = this.lastSlices!;
      this.probing = this.probeDrains(slices, false)
        .then((changed) => { if (changed && !this.stopped && slices === this.lastSlices) void this.onSnapshot(slices); return changed; })
        .finally(() => { this.probing = undefined; this.scheduleProbe(); });
    }, this.o.drainPollMs ?? defaultSyncOptions.drainPollMs);
  }

  private async onSnapshot(slices: EndpointSlice[]): Promise<void> {
    if (this.stopped) return;
    // Annotation look-ups and drain probes are async: only the newest snapshot may set the desired state.
    const seq = ++this.snapshotSeq;
    this.lastSlices = slices;
    const ann = await this.annotations(slices);
    await this.probeDrains(slices, true);
    if (seq !== this.snapshotSeq || this.stopped) return;
    if (!this.probeTimer) this.scheduleProbe();
    const nodes = desiredNodes(slices, this.o.select, this.tableUrls(), ann, (pod, key, value) =>
      this.log.warn({ pod, annotation: key, value }, 'ignoring an invalid annotation (want a non-negative integer)'), this.reports);
    if (!nodes.length) {
      this.m.kept.inc();
      this.log.warn({ slices: slices.length, rows: this.table?.length ?? 0 }, 'no ready rtpengine in the EndpointSlices; never writing an empty table, keeping the last one');
      return;
    }
    const prev = this.desired;
    this.desired = nodes;
    if (prev && sameSet(prev, nodes) && this.pendingSince === undefined && this.loaded) return;
    this.pendingSince ??= this.d.clock.monotonic();
    this.schedule();
  }

  /** When to act next: after the debounce (bounded by maxDelay), not before the reload window opens. */
  private schedule(): void {
    if (this.stopped) return;
    if (this.running) { this.dirty = true; return; }
    const now = this.d.clock.monotonic();
    const since = this.pendingSince ?? now;
    let due = Math.min(now + this.o.debounceMs, since + this.o.maxDelayMs);
    due = Math.max(due, this.nextRetryAt);
    // Writing early costs nothing, but only the reload makes it visible: wait for the window, so a
    // burst of changes inside it becomes one write and one reload.
    if (this.lastReloadAt !== undefined && !this.tableMatchesDesired()) due = Math.max(due, this.lastReloadAt + this.o.reloadIntervalMs);
    this.timer?.cancel();
    this.timer = this.d.clock.setTimeout(() => this.kick(), Math.max(0, due - now));
  }

  private tableUrls(): Set<string> {
    return new Set((this.table ?? []).map((n) => n.url));
  }

  private tableMatchesDesired(): boolean {
    return !!this.table && !!this.desired && sameSet(this.table, this.desired);
  }

  private kick(): void {
    if (this.running || this.stopped) return;
    this.running = this.apply()
      .catch((e: unknown) => { this.log.error({ err: (e as Error).message }, 'sync round failed; retrying'); this.nextRetryAt = this.d.clock.monotonic() + this.o.reloadIntervalMs; this.dirty = true; })
      .finally(() => {
        this.running = undefined;
        this.m.inSync.set(this.loaded && this.tableMatchesDesired() ? 1 : 0);
        for (const fn of this.listeners) fn(this.status());
        if (this.dirty || !(this.loaded && this.tableMatchesDesired())) { this.dirty = false; this.schedule(); }
      });
  }

  private async apply(): Promise<void> {
    const desired = this.desired;
    if (!desired) return;
    if (!this.tableMatchesDesired()) {
      const before = this.table ?? [];
      const minMtimeS = this.lastMtimeS === undefined ? undefined : this.lastMtimeS + 1;
      this.lastMtimeS = await writeDbTextFile(this.path, renderRtpengineTable(desired.map((n) => ({ setid: n.setid, url: n.url, weight: n.weight, disabled: false }))), { minMtimeS });
      this.table = desired;
      this.loaded = false;
      this.m.writes.inc();
      this.m.nodes.set(desired.length);
      const { added, removed, changed } = diffNodes(before, desired);
      this.log.info({ added: added.map(label), removed: removed.map(label), changed: changed.map(label), nodes: desired.length,
        terminating: desired.filter((n) => n.terminating).map((n) => n.pod), draining: desired.filter((n) => n.draining).map((n) => n.pod),
        drainComplete: removed.filter((n) => this.reports.get(n.url) === 'drained').map((n) => n.pod) }, 'rtpengine table changed');
    }
    if (this.loaded) { this.pendingSince = undefined; return; }
    // Kamailio may already hold this list (it re-read the file when it started).
    if (await this.kamailioHasTable()) {
      this.loaded = true;
      this.pendingSince = undefined;
      this.reloadFailures = 0;
      this.log.info({ nodes: this.table!.length }, 'Kamailio already has this table; no reload needed');
      return;
    }
    await this.reload();
  }

  private async kamailioHasTable(): Promise<boolean> {
    try {
      const shown = await showNodes(this.d.rpc);
      return sameSet(shown.map((n) => ({ url: n.url, setid: Number(n.set), weight: Number(n.weight) })), this.table ?? []);
    } catch {
      return false;
    }
  }

  private async reload(): Promise<void> {
    const now = this.d.clock.monotonic();
    try {
      await this.d.rpc.call('rtpengine.reload');
    } catch (e) {
      if (isReloadTooSoon(e)) {
        this.lastReloadAt = now;
        this.m.failures.inc({ reason: 'too_soon' });
        this.nextRetryAt = now + this.o.reloadIntervalMs;
        this.log.info({ retryInMs: this.o.reloadIntervalMs }, 'Kamailio refused the reload (10 s limit); retrying after the window');
        return;
      }
      const details = (e as { details?: Record<string, unknown> }).details ?? {};
      if (details.faultCode !== undefined) {
        // Kamailio got the request and set its reload time before failing: wait a full window.
        this.lastReloadAt = now;
        this.m.failures.inc({ reason: 'fault' });
        this.nextRetryAt = now + this.o.reloadIntervalMs;
        this.log.error({ err: (e as Error).message, retryInMs: this.o.reloadIntervalMs }, 'rtpengine.reload failed in Kamailio');
        return;
      }
      this.m.failures.inc({ reason: 'unreachable' });
      const retryInMs = backoff(++this.reloadFailures, { initialDelayMs: this.o.retryMs, maxDelayMs: this.o.reloadIntervalMs, jitter: 'none' });
      this.nextRetryAt = now + retryInMs;
      this.log.warn({ err: (e as Error).message, retryInMs }, 'Kamailio RPC unreachable; the table file is written and the reload will be retried');
      return;
    }
    this.lastReloadAt = this.d.clock.monotonic();
    this.reloadFailures = 0;
    this.loaded = true;
    this.pendingSince = undefined;
    this.reloads++;
    this.m.reloads.inc();
    const ok = await this.kamailioHasTable();
    this.log.info({ nodes: this.table!.length, verified: ok }, ok ? 'Kamailio reloaded the rtpengine table' : 'Kamailio reloaded, but rtpengine.show differs from the table file');
  }
}

/**
 * Init-container mode: write the table from one list of EndpointSlices, before Kamailio starts
 * (it needs the file to start). Waits up to `timeoutMs` for a serving rtpengine; with none, an
 * existing table is kept, and only a missing one is created empty (there is nothing to preserve).
 */
export async function writeOnce(o: Pick<SyncOptions, 'dbDir' | 'table' | 'select'>, list: () => Promise<EndpointSlice[]>,
  d: { clock: Clock; log: Logger; timeoutMs: number; pollMs?: number; signal?: AbortSignal }): Promise<{ rows: number; wrote: boolean }> {
  const log = d.log.child({ component: 'kamailio-sync' });
  const path = join(o.dbDir, o.table);
  await ensureVersionRow(o.dbDir, o.table);
  const current = new Set(((await readRtpengineTable(path).catch(() => undefined)) ?? []).map((r) => r.url));
  const end = d.clock.monotonic() + d.timeoutMs;
  for (;;) {
    let nodes: DesiredNode[] = [];
    try {
      nodes = desiredNodes(await list(), o.select, current);
    } catch (e) {
      log.warn({ err: (e as Error).message }, 'listing EndpointSlices failed; retrying');
    }
    if (nodes.length) {
      await writeDbTextFile(path, renderRtpengineTable(nodes.map((n) => ({ setid: n.setid, url: n.url, weight: n.weight, disabled: false }))));
      log.info({ path, nodes: nodes.map(label) }, 'wrote the rtpengine table');
      return { rows: nodes.length, wrote: true };
    }
    if (d.clock.monotonic() >= end || d.signal?.aborted) break;
    await d.clock.sleep(d.pollMs ?? 1000, d.signal);
  }
  const existing = await readRtpengineTable(path).catch(() => undefined);
  if (existing) {
    log.warn({ path, rows: existing.length }, 'no serving rtpengine found; keeping the existing table');
    return { rows: existing.length, wrote: false };
  }
  await writeDbTextFile(path, renderRtpengineTable([]));
  log.warn({ path }, 'no serving rtpengine found and no table yet; wrote an empty table so Kamailio can start (the sync fills it)');
  return { rows: 0, wrote: true };
}
