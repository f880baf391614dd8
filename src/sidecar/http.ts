// The sidecar's HTTP control server: the one metrics + health server plus GET /status (JSON),
// POST /drain, and GET /drain/wait (the image-independent preStop: drain, answer when drained).
// It knows nothing of ng: it asks a ControlTarget (the proxy, or the sidecar
// main composing more state) for readiness, status and to drain.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { Registry } from 'prom-client';
import type { Logger } from '../log.js';
import { json, startMetricsServer, type MetricsServer, type Readiness } from '../http/metrics-server.js';

export type { Readiness };

export interface ControlTarget {
  ready(): Readiness;
  status(): Record<string, unknown>;
  /** Start (or join) a drain; returns the status to show the caller. */
  drain(opts: { deadlineMs?: number; trigger: string }): Record<string, unknown>;
  /** Resolves when the drain is complete (0 sessions or its deadline); serves GET /drain/wait. */
  drained?(): Promise<object>;
}

export interface ControlServerOptions {
  host: string;
  port: number;
  registry: Registry;
  target: ControlTarget;
  log: Logger;
  /** Accept drain requests from any peer (default false: only the pod itself, see mayDrain). */
  allowRemoteDrain?: boolean;
  /** A drain request carrying this token (header `x-drain-token` or `authorization: Bearer …`) is the pod's own. */
  drainToken?: string;
}

export type ControlServer = MetricsServer;

const LOOPBACK = /^(127\.|::1$|::ffff:127\.)/;
/** Istio's inbound passthrough source: traffic from any peer, re-sent over loopback by the mesh. */
const MESH_PASSTHROUGH = /^(::ffff:)?127\.0\.0\.6$/;

/**
 * Only the pod itself may start a drain (#15 defect 1): a drained pod stays drained across restarts,
 * so a drain from anyone else takes the node out of service. With a token configured, the token
 * is required from every source (behind a mesh, loopback proves nothing); without one, loopback
 * sources other than a mesh's passthrough address. `remote` (opt-in) accepts any peer.
 */
export function mayDrain(peer: string, headers: IncomingMessage['headers'], o: { drainToken?: string; allowRemoteDrain?: boolean }): boolean {
  if (o.allowRemoteDrain) return true;
  if (o.drainToken) {
    const auth = headers.authorization;
    const given = headers['x-drain-token'] ?? (typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice(7) : undefined);
    return typeof given === 'string' && given.length === o.drainToken.length && timingSafeEqual(Buffer.from(given), Buffer.from(o.drainToken));
  }
  return LOOPBACK.test(peer) && !MESH_PASSTHROUGH.test(peer);
}
const MAX_BODY = 4096;
const DRAIN_REFUSED = 'a drain is accepted only from the pod itself: loopback (not a mesh passthrough address), or with the token of --control-drain-token (header x-drain-token); see docs/sidecar.md';

function readBody(req: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) { resolve(undefined); req.destroy(); return; }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', () => resolve(undefined));
  });
}

/** Parses `{"deadlineSeconds": N}` (body) or `?deadlineSeconds=N`; returns an error text when bad. */
function drainDeadline(url: URL, body: string): { deadlineMs?: number } | string {
  let v: unknown = url.searchParams.get('deadlineSeconds') ?? undefined;
  if (body.trim()) {
    let parsed: unknown;
    try { parsed = JSON.parse(body); } catch (e) { return `body is not JSON: ${(e as Error).message}`; }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return 'body must be a JSON object such as {"deadlineSeconds": 600}';
    v = (parsed as Record<string, unknown>).deadlineSeconds ?? v;
  }
  if (v === undefined || v === null) return {};
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) return `deadlineSeconds must be a positive number, got ${JSON.stringify(v)}`;
  return { deadlineMs: n * 1000 };
}

/** POST /drain: start (or join) a drain, answered at once with the drain status. */
async function postDrain(o: ControlServerOptions, log: Logger, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  if (req.method !== 'POST') { res.writeHead(405, { allow: 'POST' }).end('use POST /drain\n'); return; }
  const peer = req.socket.remoteAddress ?? '';
  if (!mayDrain(peer, req.headers, o)) {
    log.warn({ peer }, 'POST /drain refused: not from the pod itself');
    json(res, 403, { error: DRAIN_REFUSED });
    return;
  }
  const body = await readBody(req);
  if (body === undefined) { json(res, 400, { error: `body larger than ${MAX_BODY} bytes or unreadable` }); return; }
  const d = drainDeadline(url, body);
  if (typeof d === 'string') { json(res, 400, { error: d }); return; }
  log.info({ peer, ...d }, 'drain requested over HTTP');
  json(res, 202, o.target.drain({ ...d, trigger: 'http' }));
}

/**
 * GET /drain/wait, an httpGet preStop hook: start (or join) the drain with the sidecar's own
 * deadline and hold the response until it is complete. The kubelet waits for it up to the grace
 * period; a client that goes away does not stop the drain. Repeated calls join the same drain.
 */
async function drainWait(o: ControlServerOptions, log: Logger, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== 'GET') { res.writeHead(405, { allow: 'GET' }).end('use GET /drain/wait\n'); return; }
  const peer = req.socket.remoteAddress ?? '';
  if (!mayDrain(peer, req.headers, o)) {
    log.warn({ peer }, 'GET /drain/wait refused: not from the pod itself');
    json(res, 403, { error: DRAIN_REFUSED });
    return;
  }
  if (!o.target.drained) { json(res, 501, { error: 'this control target cannot wait for a drain; use POST /drain and poll /status' }); return; }
  log.info({ peer }, 'drain requested by GET /drain/wait (preStop): holding the response until drained');
  o.target.drain({ trigger: 'prestop-http' });
  req.socket.setTimeout(0);
  const done = await o.target.drained();
  if (!res.destroyed) json(res, 200, done);
}

/** The one metrics + health server (src/http/metrics-server.ts) with the control routes added. */
export async function startControlServer(o: ControlServerOptions): Promise<ControlServer> {
  const log = o.log.child({ component: 'control-http' });
  return startMetricsServer({
    host: o.host, port: o.port, registry: o.registry, log: o.log, component: 'control-http',
    ready: () => o.target.ready(),
    routes: {
      '/status': (req, res) => {
        if (req.method !== 'GET' && req.method !== 'HEAD') { res.writeHead(405, { allow: 'GET' }).end(); return; }
        json(res, 200, o.target.status());
      },
      '/drain': (req, res, url) => postDrain(o, log, req, res, url),
      '/drain/wait': (req, res) => drainWait(o, log, req, res),
    },
  });
}
