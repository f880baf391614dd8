// `rtpengine-k8s kamailio-sync`: wires the EndpointSlice watch (KubePort), Kamailio JSON-RPC, the
// db_text table and a small /metrics server into KamailioSync; `--once` is the init-container mode.
import { createServer, type Server } from 'node:http';
import { defineCommand } from '../command.js';
import { systemClock } from '../clock.js';
import { createRegistry } from '../metrics.js';
import { ConfigError, Exit } from '../errors.js';
import { kamailioSyncOptions, selectorOf, type KamailioSyncConfig } from './options.js';
import { httpDrainProbe, kubeEndpointSource, kubePodAnnotations, type EndpointSlice } from './endpoints.js';
import { fifoRpc, httpRpc } from './jsonrpc.js';
import { KamailioSync, worstCaseRemovalMs, writeOnce } from './sync.js';
import type { Registry } from 'prom-client';
import { parseHostPort } from '../net/host-port.js';

function listenAddr(s: string): { host: string; port: number } {
  const hp = parseHostPort(s);
  if (!hp) throw new ConfigError('CONFIG_INVALID', { problems: [`--metrics-listen: expected host:port, got '${s}'`] });
  return hp;
}

function metricsServer(registry: Registry, status: () => unknown, at: { host: string; port: number }): Promise<Server> {
  const server = createServer((req, res) => {
    void (async () => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/metrics') { res.writeHead(200, { 'content-type': registry.contentType }); res.end(await registry.metrics()); return; }
      if (path === '/healthz') { res.writeHead(200, { 'content-type': 'text/plain' }); res.end('ok\n'); return; }
      if (path === '/status') { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify(status(), null, 2)); return; }
      res.writeHead(404, { 'content-type': 'text/plain' }); res.end('try /metrics /healthz /status\n');
    })().catch(() => { res.writeHead(500); res.end(); });
  });
  return new Promise((resolve, reject) => { server.once('error', reject); server.listen(at.port, at.host, () => resolve(server)); });
}

export const kamailioSyncCommand = defineCommand({
  name: 'kamailio-sync',
  summary: "keep Kamailio's rtpengine table (db_text) equal to the live sidecars and rtpengine.reload it",
  options: kamailioSyncOptions,
  async run(c: KamailioSyncConfig, _pos, ctx) {
    if (c.controlPortName && c.drainProbeTimeoutMs >= c.drainPollMs) {
      throw new ConfigError('CONFIG_INVALID', { problems: [`--drain-probe-timeout-ms (${c.drainProbeTimeoutMs}) must be below --drain-poll-ms (${c.drainPollMs})`] });
    }
    // Loaded here, not at the top: other commands of this CLI do without @kubernetes/client-node.
    const { createKubeClient, kubeConfigFrom } = await import('../kube/client.js');
    const kube = createKubeClient(kubeConfigFrom({ kubeconfig: c.kubeconfig || undefined }));
    const selector = selectorOf(c);
    const select = { portName: c.ngPortName, controlPortName: c.controlPortName, addressType: c.addressType, setid: c.setid, weight: c.weight };
    if (c.once) {
      const r = await writeOnce({ dbDir: c.dbDir, table: c.table, select },
        async () => (await kube.listEndpointSlices(c.namespace, selector)) as EndpointSlice[],
        { clock: systemClock, log: ctx.log, timeoutMs: c.onceTimeoutMs, signal: ctx.signal });
      ctx.log.info({ rows: r.rows, wrote: r.wrote }, 'kamailio-sync --once done');
      return Exit.OK;
    }
    const registry = createRegistry();
    const rpc = c.rpcTransport === 'fifo' ? fifoRpc(c.rpcFifo, c.rpcReplyDir, { timeoutMs: c.rpcTimeoutMs }) : httpRpc(c.rpcUrl, { timeoutMs: c.rpcTimeoutMs });
    const sync = new KamailioSync(
      { dbDir: c.dbDir, table: c.table, select, debounceMs: c.debounceMs, maxDelayMs: c.maxDelayMs, reloadIntervalMs: c.reloadIntervalMs, retryMs: c.retryMs,
        drainPollMs: c.drainPollMs, drainProbeTimeoutMs: c.drainProbeTimeoutMs },
      { source: kubeEndpointSource(kube, c.namespace, selector), rpc, clock: systemClock, log: ctx.log, registry,
        podAnnotations: c.podAnnotations ? kubePodAnnotations(kube) : undefined,
        drainProbe: c.controlPortName ? httpDrainProbe(c.drainProbeTimeoutMs) : undefined },
    );
    const server = c.metricsListen ? await metricsServer(registry, () => sync.status(), listenAddr(c.metricsListen)) : undefined;
    ctx.log.info({ namespace: c.namespace, selector, dbDir: c.dbDir, rpc: c.rpcTransport, metrics: c.metricsListen || 'off',
      drainProbe: c.controlPortName ? { port: c.controlPortName, pollMs: c.drainPollMs, timeoutMs: c.drainProbeTimeoutMs, sidecarLingerMustExceedMs: worstCaseRemovalMs(c) } : 'off' }, 'kamailio-sync starting');
    await sync.start();
    await new Promise<void>((resolve) => { if (ctx.signal.aborted) resolve(); else ctx.signal.addEventListener('abort', () => resolve(), { once: true }); });
    await sync.stop();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    return Exit.OK;
  },
});
