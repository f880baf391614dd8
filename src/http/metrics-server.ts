// The one /metrics + health HTTP server of the three programs: /metrics from the process's one
// registry, /healthz, /readyz from a provided check; a program adds its own routes (the sidecar's
// /status and /drain) through `routes` rather than running a second server.
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from '../log.js';

export interface Readiness { ready: boolean; reasons: string[] }

/** An extra route: handles every method on its path (it answers 405 itself where it must). */
export type Route = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;

export interface MetricsServerOptions {
  host: string;
  port: number;
  registry: Registry;
  log: Logger;
  /** /readyz: 200 when ready, 503 with the reasons otherwise (default: always ready, as /healthz). */
  ready?: () => Readiness;
  /** Extra routes by exact path; they cannot replace /metrics, /healthz or /readyz. */
  routes?: Record<string, Route>;
  /** Logger component name (default `metrics-http`). */
  component?: string;
}

export interface MetricsServer { host: string; port: number; url: string; close(): Promise<void> }

export function json(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const alwaysReady = (): Readiness => ({ ready: true, reasons: [] });

async function builtIn(o: MetricsServerOptions, path: string, res: ServerResponse): Promise<boolean> {
  switch (path) {
    case '/metrics': {
      const text = await o.registry.metrics();
      res.writeHead(200, { 'content-type': o.registry.contentType }).end(text);
      return true;
    }
    case '/healthz':
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return true;
    case '/readyz': {
      const r = (o.ready ?? alwaysReady)();
      json(res, r.ready ? 200 : 503, r);
      return true;
    }
    default: return false;
  }
}

/** Listen on host:port; resolves once listening (rejects with the listen error). */
export async function startMetricsServer(o: MetricsServerOptions): Promise<MetricsServer> {
  const log = o.log.child({ component: o.component ?? 'metrics-http' });
  const routes = o.routes ?? {};
  const known = ['/metrics', '/healthz', '/readyz', ...Object.keys(routes)].join(' ');
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://x');
    const builtin = url.pathname === '/metrics' || url.pathname === '/healthz' || url.pathname === '/readyz';
    const route = builtin ? undefined : routes[url.pathname];
    if (route) { await route(req, res, url); return; }
    if (req.method !== 'GET' && req.method !== 'HEAD') { res.writeHead(405, { allow: 'GET' }).end(); return; }
    if (!(await builtIn(o, url.pathname, res))) json(res, 404, { error: `no such endpoint ${url.pathname}; try ${known}` });
  };
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      log.error({ err: e, path: req.url }, 'HTTP request failed');
      if (!res.headersSent) json(res, 500, { error: (e as Error).message });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => { server.off('error', reject); resolve(); });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.address.includes(':') ? `[${addr.address}]` : addr.address;
  log.info({ address: addr.address, port: addr.port, endpoints: known }, 'HTTP server listening');
  return {
    host: addr.address,
    port: addr.port,
    url: `http://${host}:${addr.port}`,
    close: () => new Promise<void>((r) => { server.closeAllConnections?.(); server.close(() => r()); }),
  };
}
