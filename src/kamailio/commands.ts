// `rtpengine-k8s kamailio-sync`: wires the EndpointSlice watch (KubePort), Kamailio JSON-RPC, the
// db_text table and the one metrics + health server (with /status) into KamailioSync; `--once` is the init-container mode.
import { defineCommand } from '../command.js';
import { systemClock } from '../clock.js';
import { createRegistry } from '../metrics.js';
import { ConfigError, Exit } from '../errors.js';
import { kamailioSyncOptions, selectorOf, type KamailioSyncConfig } from './options.js';
import { httpDrainProbe, kubeEndpointSource, kubePodAnnotations, type EndpointSlice } from './endpoints.js';
import { fifoRpc, httpRpc } from './jsonrpc.js';
import { KamailioSync, worstCaseRemovalMs, writeOnce } from './sync.js';
import { json, startMetricsServer } from '../http/metrics-server.js';
import { parseHostPort } from '../net/host-port.js';

function listenAddr(s: string): { host: string; port: number } {
  const hp = parseHostPort(s);
  if (!hp) throw new ConfigError('CONFIG_INVALID', { problems: [`--metrics-listen: expected host:port, got '${s}'`] });
  return hp;
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
    const server = c.metricsListen
      ? await startMetricsServer({ ...listenAddr(c.metricsListen), registry, log: ctx.log, routes: { '/status': (_req, res) => json(res, 200, sync.status()) } })
      : undefined;
    ctx.log.info({ namespace: c.namespace, selector, dbDir: c.dbDir, rpc: c.rpcTransport, metrics: c.metricsListen || 'off',
      drainProbe: c.controlPortName ? { port: c.controlPortName, pollMs: c.drainPollMs, timeoutMs: c.drainProbeTimeoutMs, sidecarLingerMustExceedMs: worstCaseRemovalMs(c) } : 'off' }, 'kamailio-sync starting');
    await sync.start();
    await new Promise<void>((resolve) => { if (ctx.signal.aborted) resolve(); else ctx.signal.addEventListener('abort', () => resolve(), { once: true }); });
    await sync.stop();
    await server?.close();
    return Exit.OK;
  },
});
