// `rtpengine-k8s drain [--wait] [--url …]`: asks the local sidecar to drain (POST /drain) and, with
// --wait, follows GET /status printing sessions left and time elapsed until the drain completes;
// exits non-zero when the deadline ended it with calls left. Meant for the pod's preStop hook.
import { z } from 'zod';
import { defineCommand } from '../command.js';
import { opt } from '../config.js';
import { Exit, SidecarError } from '../errors.js';
import type { DrainStatus } from './drain.js';

export const drainOptions = {
  url: opt.string('the sidecar control server', 'http://127.0.0.1:9450', { env: 'RTPE_K8S_CONTROL_URL' }),
  wait: opt.bool('block until the drain completes, printing progress', false, { env: 'RTPE_K8S_DRAIN_WAIT' }),
  deadlineSeconds: opt.int('drain deadline to request (0 = the sidecar\'s --drain-deadline-seconds)', 0, { min: 0 }, { env: 'RTPE_K8S_DRAIN_REQUEST_DEADLINE_SECONDS' }),
  pollMs: opt.int('with --wait, poll the sidecar this often', 1000, { min: 50 }, { env: 'RTPE_K8S_DRAIN_POLL_MS' }),
  token: opt.optionalString("the sidecar's --control-drain-token, sent as header x-drain-token", { env: 'RTPE_K8S_CONTROL_DRAIN_TOKEN' }),
};

interface ProxyView { drain: DrainStatus; sessions?: number; rtpengine?: { sessionsOwn?: number } }

const drainSchema = z.object({ phase: z.enum(['serving', 'draining', 'drained']) }).passthrough();
const proxySchema = z.object({ drain: drainSchema, sessions: z.number().optional() }).passthrough();

/**
 * The drain view in any of the shapes the control server answers: the proxy's status
 * (`{drain, sessions, rtpengine}`), the sidecar's (`{proxy: {…}}`), or a bare DrainStatus.
 */
export function proxyView(body: unknown): ProxyView | undefined {
  const b = body as Record<string, unknown> | null;
  if (!b || typeof b !== 'object') return undefined;
  for (const cand of [b, b.proxy]) if (proxySchema.safeParse(cand).success) return cand as unknown as ProxyView;
  if (drainSchema.safeParse(b).success) return { drain: b as unknown as DrainStatus, sessions: typeof b.sessions === 'number' ? b.sessions : undefined };
  return undefined;
}

async function call(url: string, init?: RequestInit): Promise<ProxyView> {
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal: AbortSignal.timeout(5000) });
  } catch (e) {
    throw new SidecarError('SIDECAR_UNREACHABLE', { url, reason: (e as Error).cause ? String((e as { cause: unknown }).cause) : (e as Error).message });
  }
  const text = await res.text();
  if (!res.ok) throw new SidecarError('SIDECAR_UNREACHABLE', { url, reason: `HTTP ${res.status}: ${text.trim()}` });
  let body: unknown;
  try { body = JSON.parse(text); } catch { throw new SidecarError('SIDECAR_UNREACHABLE', { url, reason: `not JSON: ${text.slice(0, 200)}` }); }
  const v = proxyView(body);
  if (!v) throw new SidecarError('SIDECAR_UNREACHABLE', { url, reason: `answered without a drain phase: ${text.slice(0, 200)}` });
  return v;
}

export const drainCommand = defineCommand({
  name: 'drain',
  summary: 'drain the local sidecar: refuse new calls, keep existing ones; --wait blocks until empty',
  usage: 'drain [--wait] [--url http://127.0.0.1:9450] [--deadline-seconds N]',
  options: drainOptions,
  async run(config, _positionals, ctx) {
    const base = config.url.replace(/\/+$/, '');
    const started = Date.now();
    const body = config.deadlineSeconds > 0 ? JSON.stringify({ deadlineSeconds: config.deadlineSeconds }) : '';
    const first = await call(`${base}/drain`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...(config.token ? { 'x-drain-token': config.token } : {}) } });
    const sessionsOf = (s: ProxyView) => s.drain?.sessionsLeft ?? s.rtpengine?.sessionsOwn ?? s.sessions ?? 0;
    const line = (s: ProxyView) => {
      const d = s.drain;
      const elapsed = ((Date.now() - started) / 1000).toFixed(1);
      const deadline = d.deadlineAt ? `, deadline in ${Math.max(0, (d.deadlineAt - Date.now()) / 1000).toFixed(0)} s` : '';
      ctx.stdout.write(`${d.phase}: ${sessionsOf(s)} session(s) left, ${elapsed} s elapsed${d.phase === 'draining' ? deadline : ''}\n`);
    };
    let s = first;
    line(s);
    if (!config.wait) return Exit.OK;
    while (s.drain.phase !== 'drained') {
      if (ctx.signal.aborted) {
        ctx.stdout.write('stopped waiting; the sidecar keeps draining\n');
        return Exit.TEMPFAIL;
      }
      await new Promise((r) => setTimeout(r, config.pollMs));
      try {
        s = await call(`${base}/status`);
      } catch (e) {
        // The sidecar ends the pod once a drain completes; seen empty last time → that is what happened.
        if (sessionsOf(s) === 0) {
          ctx.stdout.write(`sidecar went away after draining to 0 sessions, ${((Date.now() - started) / 1000).toFixed(1)} s elapsed\n`);
          return Exit.OK;
        }
        throw e;
      }
      line(s);
    }
    if (s.drain.outcome === 'deadline') {
      const e = new SidecarError('DRAIN_DEADLINE', { deadlineS: ((s.drain.deadlineAt! - s.drain.startedAt!) / 1000).toFixed(0), sessions: sessionsOf(s) });
      ctx.log.warn({ code: e.code }, e.message);
      ctx.stdout.write(`${e.message}\n`);
      return e.exitCode;
    }
    if (s.drain.outcome === 'upstream-down') {
      // rtpengine stopped answering while draining: its calls are gone, not finished.
      const e = new SidecarError('DRAIN_UPSTREAM_DOWN', { sessions: sessionsOf(s) });
      ctx.log.warn({ code: e.code }, e.message);
      ctx.stdout.write(`${e.message}\n`);
      return e.exitCode;
    }
    ctx.stdout.write(`drained: 0 sessions after ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    return Exit.OK;
  },
});
