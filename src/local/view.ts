// What `rtpengine-k8s local` shows: per pod (table, media IP, sessions, state, in Kamailio's set or
// not) and overall (calls active, completed, failed, failed over, dropped), and the summary at the end.
import type { LocalRun } from './run.js';
import type { RunSummary } from './verdict.js';

export function podTable(run: LocalRun): string {
  const rows = run.pods.pods.filter((p) => p.state !== 'gone' || (p.goneAt ?? 0) > Date.now() - 30_000).map((p) => [
    p.name, p.table === undefined ? '-' : String(p.table), p.mediaIp ?? '-', String(p.state === 'gone' ? 0 : p.sessions),
    p.terminating && p.state === 'serving' ? 'draining' : p.state,
    run.kamailio ? (run.inKamailio(p) ? 'yes' : 'no') : '-',
    String(p.deletionCost() === -2147483648 ? 'min' : p.deletionCost()),
    p.persistence === undefined ? '-' : p.persistence ? 'on' : 'off',
  ]);
  const head = ['POD', 'TABLE', 'MEDIA IP', 'SESSIONS', 'STATE', 'IN KAMAILIO', 'DELETION COST', 'PERSISTENCE'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}

export function callsLine(run: LocalRun): string {
  if (!run.media) return 'calls: no traffic (--no-traffic)';
  const s = run.summary();
  const active = run.media.upCalls().length;
  return `calls: ${active} active, ${s.completed} completed, ${s.failed} failed, ${s.failedOver} failed over, ${s.dropped} dropped` +
    ` (worst media gap ${s.worstMediaGapMs} ms; placed ${s.placed})`;
}

export function summaryText(s: RunSummary): string {
  return [
    `placed ${s.placed}, completed ${s.completed}, in progress ${s.inProgress}`,
    `failed ${s.failed}, failed over ${s.failedOver}, BYE failed ${s.byeFailed}, media dropped ${s.mediaDropped} → dropped ${s.dropped}`,
    `worst media gap ${s.worstMediaGapMs} ms (limit 1000); cross-check endpoint-only ${s.crossCheck.endpointOnly}, rtpengine-only ${s.crossCheck.rtpengineOnly}, both ${s.crossCheck.both}, calls sampled by query ${s.crossCheck.sampledCalls} (${s.crossCheck.unansweredQueries} queries unanswered in time: no evidence either way)`,
    ...s.pods.map((p) => `  ${p.pod}: ready after ${p.readyAfterS ?? '-'} s${p.drainSeconds !== undefined ? `, drained and gone ${p.drainSeconds.toFixed(1)} s after its deletion began (preStop exit ${p.preStopExit ?? '-'})` : ''}`),
  ].join('\n');
}
