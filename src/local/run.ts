// One local run, the whole story: allocator, sidecar pods, Kamailio fed by kamailio-sync from the
// local endpoint source, SIPp traffic with the caller RTP endpoint and rtpengine's query as
// ground truth; plus what happened (a timeline of sessions per pod, and per-call verdicts).
import { mkdir, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Logger } from '../log.js';
import { createRegistry } from '../metrics.js';
import { systemClock } from '../clock.js';
import { startAllocator, type AllocatorHandle } from '../allocator/allocator.js';
import { parseTableRange } from '../allocator/tables.js';
import { KamailioSync, defaultSyncOptions, worstCaseRemovalMs } from '../kamailio/sync.js';
import { httpDrainProbe, nodeUrl } from '../kamailio/endpoints.js';
import { localEndpointSource } from '../kamailio/local-endpoints.js';
import { showNodes } from '../kamailio/jsonrpc.js';
import { LocalPods, type LocalPod } from './pods.js';
import { startLocalKamailio, type LocalKamailio } from './kamailio.js';
import { startTraffic, type Traffic } from './traffic.js';
import { CallerMedia, tailGapMs } from './media.js';
import { MediaSampler } from './truth.js';
import { summarize, verdictOf, type RunSummary } from './verdict.js';
import { startLocalRedis, type LocalRedis } from './redis.js';

export interface LocalRunOptions {
  dir: string;
  pods: number;
  traffic: boolean;
  rate: number;
  durationMinMs: number;
  durationMaxMs: number;
  ports: {
    ng: number; control: number; rtpengineNg: number; mediaMin: number; mediaMax: number;
    sip: number; rpc: number; uac: number; uas: number; echo: number; sippControl: number; callerRtp: number; uacMedia: number;
  };
  procRoot: string;
  kernel: boolean;
  rtpengineBinary: string;
  drainDeadlineSeconds: number;
  brokenDrain?: boolean;
  /** Call persistence: a local redis-server on this port, one database per pod (off when absent). */
  persistence?: { redisPort: number };
  /** Place this many calls, then no more (SIPp -m); default: until stopped. */
  maxCalls?: number;
}

export interface TimelinePoint { t: number; pod: string; sessions: number }

/** kamailio-sync's timing here; the sidecars linger longer than its worst case (ADR 0041). */
export const LOCAL_SYNC = { ...defaultSyncOptions, drainPollMs: 500, drainProbeTimeoutMs: 400 };
export const LOCAL_LINGER_SECONDS = Math.ceil(worstCaseRemovalMs(LOCAL_SYNC) / 1000) + 2;

export class LocalRun {
  allocator: AllocatorHandle | undefined;
  pods!: LocalPods;
  kamailio: LocalKamailio | undefined;
  sync: KamailioSync | undefined;
  traffic: Traffic | undefined;
  media: CallerMedia | undefined;
  sampler: MediaSampler | undefined;
  redis: LocalRedis | undefined;
  /** URLs Kamailio holds now (rtpengine.show). */
  kamailioSet = new Set<string>();
  readonly timeline: TimelinePoint[] = [];
  readonly events: Array<{ t: number; what: string }> = [];
  readonly startedAt = Date.now();
  private timers: NodeJS.Timeout[] = [];
  private readonly loop = monitorEventLoopDelay({ resolution: 20 });

  constructor(readonly o: LocalRunOptions, private readonly log: Logger) {}

  note(what: string): void {
    this.events.push({ t: Date.now(), what });
    this.log.info(what);
  }

  async start(signal?: AbortSignal): Promise<void> {
    const o = this.o;
    await mkdir(o.dir, { recursive: true });
    const runDir = join(o.dir, 'run');
    // The local pods reuse UIDs: a drain marker left by an earlier run must not carry over.
    for (const f of await readdir(runDir).catch(() => [] as string[])) if (f.startsWith('drained-')) await unlink(join(runDir, f)).catch(() => undefined);
    this.loop.enable();
    this.allocator = await startAllocator({
      node: 'local', socket: join(o.dir, 'allocator.sock'), tableRange: parseTableRange('0-63'),
      pools: [{ name: 'local', cidr: '127.0.1.0/24', rangeStart: '127.0.1.10' }],
      stateFile: join(o.dir, 'allocator-state.json'), procRoot: o.procRoot, leaseTtlMs: 60_000, sweepIntervalMs: 2000,
    }, { log: this.log.child({ component: 'allocator' }) });
    if (o.persistence) {
      this.redis = await startLocalRedis({ dir: o.dir, port: o.persistence.redisPort });
      this.note(`call persistence: redis-server on 127.0.0.1:${o.persistence.redisPort}, one database per pod`);
    }
    const redis = this.redis;
    this.pods = new LocalPods({
      dir: o.dir, allocatorSocket: this.allocator.socket, ngPort: o.ports.ng, controlPort: o.ports.control, rtpengineNgPort: o.ports.rtpengineNg,
      mediaPortMin: o.ports.mediaMin, mediaPortMax: o.ports.mediaMax, procRoot: o.procRoot, rtpengineBinary: o.rtpengineBinary,
      drainDeadlineSeconds: o.drainDeadlineSeconds, drainLingerSeconds: LOCAL_LINGER_SECONDS, brokenDrain: o.brokenDrain,
      ...(redis ? { persistenceRedis: (n: number) => redis.url(n) } : {}),
    });
    this.pods.start();
    for (let i = 0; i < o.pods; i++) await this.pods.create();
    await this.until(() => this.pods.live().every((p) => p.state === 'serving'), 120_000, 'every sidecar serving', signal);
    this.note(`${o.pods} pod(s) serving`);
    if (!o.traffic) return;

    this.kamailio = await startLocalKamailio({ dir: o.dir, sipPort: o.ports.sip, httpPort: o.ports.rpc, callee: { host: '127.0.0.1', port: o.ports.uas } });
    const select = { portName: 'ng', controlPortName: 'control', addressType: 'IPv4' as const, setid: 0, weight: 1 };
    this.sync = new KamailioSync({ ...LOCAL_SYNC, dbDir: this.kamailio.dbDir, select },
      { source: localEndpointSource('rtpengine', () => this.pods.live().map((p) => p.endpoint())), rpc: this.kamailio.rpc, clock: systemClock,
        log: this.log.child({ component: 'kamailio-sync' }), registry: createRegistry({ defaultMetrics: false }), drainProbe: httpDrainProbe(LOCAL_SYNC.drainProbeTimeoutMs) });
    await this.sync.start();
    this.every(1000, async () => { this.kamailioSet = new Set((await showNodes(this.kamailio!.rpc)).map((n) => n.url)); });
    // Kamailio refuses reloads for 10 s after its start and after each reload (whole seconds): up to two windows.
    await this.until(() => this.pods.live().every((p) => this.inKamailio(p)), 60_000, "every pod in Kamailio's set", signal);

    this.media = await CallerMedia.open(o.ports.callerRtp);
    this.sampler = new MediaSampler(() => this.media!.upCalls(), () => this.pods.live().filter((p) => p.mediaIp).map((p) => ({ mediaIp: p.mediaIp!, host: '127.0.0.1', ngPort: p.ports.upstream })));
    this.sampler.start();
    this.traffic = await startTraffic({
      dir: o.dir, kamailio: this.kamailio.sip, uacPort: o.ports.uac, uasPort: o.ports.uas, echoPort: o.ports.echo, controlPort: o.ports.sippControl,
      callerRtpPort: o.ports.callerRtp, uacMediaPort: o.ports.uacMedia, rate: o.rate, durationMinMs: o.durationMinMs, durationMaxMs: o.durationMaxMs,
      ...(o.maxCalls ? { maxCalls: o.maxCalls } : {}),
    }, (e) => this.media!.onEvent(e));
    this.note(`traffic: ${o.rate} call(s)/s, ${o.durationMinMs / 1000}–${o.durationMaxMs / 1000} s each`);
    this.every(1000, async () => {
      const t = Date.now();
      for (const p of this.pods.live()) this.timeline.push({ t, pod: p.name, sessions: p.sessions });
    });
  }

  inKamailio(p: LocalPod): boolean { return this.kamailioSet.has(nodeUrl('127.0.0.1', p.ports.ng)); }

  /** Pods that are not gone, for the view. */
  async scale(n: number): Promise<void> {
    this.note(`scale to ${n} (replicas now ${this.pods.replicas().length})`);
    await this.pods.scale(n);
  }

  summary(): RunSummary {
    return summarize({
      calls: [...(this.media?.calls.values() ?? [])], failovers: this.kamailio?.counts.failovers ?? 0,
      pods: this.pods?.pods ?? [], loopDelayMaxMs: this.loop.max / 1e6, unansweredQueries: this.sampler?.unanswered ?? 0,
    });
  }

  /** The dropped calls with what each source saw (times in seconds since the start), for the report. */
  droppedCalls(): Array<Record<string, unknown>> {
    const rel = (t: number | undefined) => (t === undefined ? undefined : Number(((t - this.startedAt) / 1000).toFixed(2)));
    const pod = (ip: string | undefined) => this.pods.pods.find((p) => p.mediaIp === ip)?.name ?? ip;
    return [...(this.media?.calls.values() ?? [])].filter((c) => verdictOf(c).startsWith('dropped')).map((c) => ({
      callId: c.callId, verdict: verdictOf(c), pod: pod(c.remote?.ip), up: rel(c.upAt), bye: rel(c.byeAt), end: rel(c.endAt),
      sent: c.sent, received: c.received, maxGapMs: Math.round(c.maxGapMs), tailGapMs: Math.round(tailGapMs(c)),
      rtpe: { samples: c.rtpe.samples, stalledAt: c.rtpe.stalledAt.map(rel), unknownAt: c.rtpe.unknownAt.map(rel), last: c.rtpe.last },
    }));
  }

  /** Ctrl-C: stop placing calls, let those in progress end, drain every pod, stop everything. */
  async stop(finishCallsMs: number): Promise<void> {
    if (this.traffic) await this.traffic.finish(finishCallsMs);
    await this.pods?.stopAll();
    await this.close();
  }

  /** Tear-down without waiting for anything (also after a failed start). */
  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.traffic?.stop().catch(() => undefined);
    this.sampler?.stop();
    this.media?.close();
    await this.sync?.stop().catch(() => undefined);
    await this.kamailio?.stop().catch(() => undefined);
    if (this.pods) await Promise.all(this.pods.live().map((p) => p.child.stop('SIGTERM', 5000)));
    await this.redis?.stop().catch(() => undefined);
    await this.allocator?.close();
    this.loop.disable();
  }

  async until(f: () => boolean, ms: number, what: string, signal?: AbortSignal): Promise<void> {
    const end = Date.now() + ms;
    while (!f()) {
      if (signal?.aborted) throw new Error(`interrupted while waiting for ${what}`);
      if (Date.now() > end) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private every(ms: number, f: () => Promise<void>): void {
    let busy = false;
    this.timers.push(setInterval(() => {
      if (busy) return;
      busy = true;
      f().catch(() => undefined).finally(() => { busy = false; });
    }, ms));
  }
}
