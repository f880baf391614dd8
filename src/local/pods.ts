// The local "Deployment": sidecar pods as child processes (`rtpengine-k8s sidecar`, exec mode, each
// with its own rtpengine on its own media IP), watched over their control port's /status, removed
// as Kubernetes removes a pod — the chart's preStop (`rtpengine-k8s drain --wait`), then SIGTERM.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bucket, MIN_DELETION_COST } from '../sidecar/deletion-cost.js';
import { startChild, type Child } from './children.js';
import type { LocalEndpoint } from '../kamailio/local-endpoints.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'rtpengine-k8s.js');
export const MAX_PODS = 8;

export type PodState = 'starting' | 'serving' | 'draining' | 'drained' | 'gone';

export interface PodPorts { ng: number; control: number; upstream: number }

export interface LocalPodsOptions {
  dir: string;
  allocatorSocket: string;
  ngPort: number;
  controlPort: number;
  rtpengineNgPort: number;
  /** Every rtpengine gets the same block on its own media IP (they never share an address). */
  mediaPortMin: number;
  mediaPortMax: number;
  procRoot: string;
  rtpengineBinary: string;
  drainDeadlineSeconds: number;
  drainLingerSeconds: number;
  /** Test-only: scale-in skips the preStop drain and kills the pod at once (rtpengine dies with it). */
  brokenDrain?: boolean;
  /** Call persistence: the `--persistence-redis` URL of the n-th pod created (its own database); none = off. */
  persistenceRedis?: (n: number) => string;
}

export class LocalPod {
  state: PodState = 'starting';
  sessions = 0;
  table: number | undefined;
  mediaIp: string | undefined;
  rtpenginePid: number | undefined;
  /** Its sidecar reports rtpengine running with --redis (undefined until its first /status). */
  persistence: boolean | undefined;
  terminating = false;
  readonly createdAt = Date.now();
  readyAt: number | undefined;
  deleteAt: number | undefined;
  drainedAt: number | undefined;
  goneAt: number | undefined;
  preStop: Child | undefined;
  preStopCode: number | undefined;
  exitCode: number | undefined;
  lastError: string | undefined;

  constructor(readonly slot: number, readonly name: string, readonly uid: string, readonly ports: PodPorts, readonly child: Child) {}

  /** The pod-deletion-cost its sidecar would publish: the session bucket, the minimum once draining. */
  deletionCost(): number {
    return this.terminating || this.state === 'draining' || this.state === 'drained' ? MIN_DELETION_COST : bucket(this.sessions);
  }

  endpoint(): LocalEndpoint {
    return { name: this.name, namespace: 'local', ip: '127.0.0.1', ngPort: this.ports.ng, controlPort: this.ports.control, ready: this.state === 'serving', terminating: this.terminating };
  }

  /** Seconds from the start of its deletion to gone (or to now). */
  drainSeconds(): number | undefined {
    return this.deleteAt === undefined ? undefined : ((this.goneAt ?? Date.now()) - this.deleteAt) / 1000;
  }
}

export class LocalPods {
  readonly pods: LocalPod[] = [];
  private serial = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: LocalPodsOptions, private readonly onChange: () => void = () => undefined) {}

  /** Pods not gone. */
  live(): LocalPod[] { return this.pods.filter((p) => p.state !== 'gone'); }
  /** Pods the Deployment counts as replicas: not gone and not being deleted. */
  replicas(): LocalPod[] { return this.live().filter((p) => !p.terminating); }

  /** Starts watching the pods' /status. */
  start(pollMs = 500): void {
    this.timer = setInterval(() => { void this.poll(); }, pollMs);
  }

  async create(): Promise<LocalPod> {
    const used = new Set(this.live().map((p) => p.slot));
    const slot = [...Array(MAX_PODS).keys()].find((s) => !used.has(s));
    if (slot === undefined) throw new Error(`at most ${MAX_PODS} pods at once`);
    const n = this.serial++;
    const name = `local-${String.fromCharCode(97 + (n % 26))}${n >= 26 ? Math.floor(n / 26) : ''}`;
    const uid = `00000000-0000-4000-8000-${String(n + 1).padStart(12, '0')}`;
    const ports = { ng: this.o.ngPort + slot, control: this.o.controlPort + slot, upstream: this.o.rtpengineNgPort + slot };
    const args = [CLI, 'sidecar',
      '--allocator-socket', this.o.allocatorSocket, '--rtpengine-mode', 'exec', '--rtpengine-binary', this.o.rtpengineBinary,
      '--run-dir', join(this.o.dir, 'run'), '--proc-root', this.o.procRoot,
      '--media-address-mode', 'none', '--no-deletion-cost',
      '--ng-listen', `127.0.0.1:${ports.ng}`, '--ng-upstream', `127.0.0.1:${ports.upstream}`, '--control-listen', `127.0.0.1:${ports.control}`,
      '--port-min', String(this.o.mediaPortMin), '--port-max', String(this.o.mediaPortMax),
      '--drain-deadline-seconds', String(this.o.drainDeadlineSeconds), '--delete-delay-seconds', '0', '--ng-drain-poll-ms', '250',
      '--drain-linger-seconds', String(this.o.drainLingerSeconds),
      '--rtpengine-options', JSON.stringify({ 'num-threads': 2 }), '--log-level', 'info',
      ...(this.o.persistenceRedis ? ['--persistence-redis', this.o.persistenceRedis(n)] : []),
      // What the downward API gives a pod.
      '--pod-name', name, '--pod-namespace', 'local', '--pod-uid', uid, '--node-name', 'local'];
    const child = startChild(`sidecar ${name}`, process.execPath, args, { logFile: join(this.o.dir, `${name}.log`) });
    const pod = new LocalPod(slot, name, uid, ports, child);
    this.pods.push(pod);
    void child.exited.then((code) => { pod.exitCode = code; pod.state = 'gone'; pod.goneAt = Date.now(); this.onChange(); });
    return pod;
  }

  /** The pod a ReplicaSet scale-in deletes first: lowest deletion cost, then the newest. */
  victim(): LocalPod | undefined {
    return this.replicas().sort((a, b) => a.deletionCost() - b.deletionCost() || b.createdAt - a.createdAt)[0];
  }

  /** Deletes a pod as the kubelet does: preStop hook to completion, then SIGTERM. */
  delete(pod: LocalPod): Promise<void> {
    if (pod.terminating) return pod.child.exited.then(() => undefined);
    pod.terminating = true;
    pod.deleteAt = Date.now();
    this.onChange();
    if (this.o.brokenDrain) return pod.child.stop('SIGKILL').then(() => undefined);
    pod.preStop = startChild(`preStop ${pod.name}`, process.execPath, [CLI, 'drain', '--wait', '--url', `http://127.0.0.1:${pod.ports.control}`, '--poll-ms', '500'],
      { logFile: join(this.o.dir, `${pod.name}.prestop.log`) });
    return pod.preStop.exited.then(async (code) => {
      pod.preStopCode = code;
      await pod.child.stop('SIGTERM', (this.o.drainLingerSeconds + 30) * 1000);
    });
  }

  /** Scale the Deployment to n replicas: create pods, or delete the ones a ReplicaSet would. */
  async scale(n: number): Promise<void> {
    const want = Math.max(0, Math.min(MAX_PODS, n));
    while (this.replicas().length < want) await this.create();
    const deletions: Promise<void>[] = [];
    while (this.replicas().length > want) deletions.push(this.delete(this.victim()!));
    this.onChange();
    await Promise.all(deletions);
  }

  async stopAll(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await Promise.all(this.live().map((p) => this.delete(p)));
  }

  private async poll(): Promise<void> {
    await Promise.all(this.live().map(async (p) => {
      try {
        const res = await fetch(`http://127.0.0.1:${p.ports.control}/status`, { signal: AbortSignal.timeout(1000) });
        const s = await res.json() as Record<string, unknown>;
        if (p.state === 'gone') return;
        const st = String(s.state);
        const before = p.state;
        p.state = st === 'serving' ? 'serving' : st === 'draining' ? 'draining' : st === 'drained' || st === 'stopping' || st === 'stopped' ? 'drained' : 'starting';
        if (p.state === 'serving') p.readyAt ??= Date.now();
        if (p.state === 'drained') p.drainedAt ??= Date.now();
        p.sessions = Number(s.sessions ?? 0);
        p.table = typeof s.table === 'number' ? s.table : undefined;
        p.mediaIp = Array.isArray(s.mediaIps) ? String(s.mediaIps[0] ?? '') || undefined : undefined;
        p.rtpenginePid = typeof s.rtpenginePid === 'number' ? s.rtpenginePid : undefined;
        p.persistence = typeof s.persistence === 'boolean' ? s.persistence : undefined;
        p.lastError = undefined;
        if (before !== p.state) this.onChange();
      } catch (e) {
        p.lastError = (e as Error).message;
      }
    }));
  }
}
