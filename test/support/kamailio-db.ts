// kamailio-sync tests on the shared Kamailio harness (kamailio.ts): the project's Kamailio config
// (src/local/kamailio-cfg.ts) with nodes from a db_text table (db_mode 1), JSON-RPC over HTTP (xhttp)
// and the jsonrpcs FIFO, INVITE → rtpengine_offer, BYE → rtpengine_delete; plus EndpointSlice
// objects for the API stand-in.
import type { KubeApiServer } from './kube-apiserver.js';
import { startKamailio, type KamailioHandle } from './kamailio.js';
import { freePort } from './ports.js';
import { kamailioConfig } from '../../src/local/kamailio-cfg.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The e2e config over the db_text table: the production builder, Kamailio answering INVITEs itself. */
export const KAMAILIO_DB_CFG = kamailioConfig({ nodes: 'db', sip: 'uas', http: true, testControl: true, children: 2 });

export interface KamailioDb extends KamailioHandle {
  dbDir: string;
  httpPort: number;
  /** JSON-RPC over HTTP endpoint (xhttp). */
  rpcUrl: string;
  /** The jsonrpcs FIFO and its reply directory. */
  fifo: string;
  replyDir: string;
}

/** Start Kamailio over an existing db_text directory (it must hold `version` and `rtpengine`). */
export async function startKamailioDb(opts: { dbDir: string; serverId?: number }): Promise<KamailioDb> {
  const httpPort = await freePort();
  // fifo_reply_dir is used verbatim (Kamailio appends the reply name without a slash).
  const replyDir = mkdtempSync(join(tmpdir(), 'kamrpl-')) + '/';
  const k = await startKamailio({
    config: KAMAILIO_DB_CFG,
    settleMs: 1500,
    defines: {
      HTTP_LISTEN: `tcp:127.0.0.1:${httpPort}`,
      DB_URL: `"text://${opts.dbDir}"`,
      SERVER_ID: opts.serverId ?? 1 + Math.floor(Math.random() * 1000),
      JSONRPC_REPLY_DIR: `"${replyDir}"`,
    },
  }).catch((e: unknown) => { rmSync(replyDir, { recursive: true, force: true }); throw e; });
  const stop = k.stop;
  return Object.assign(k, {
    dbDir: opts.dbDir, httpPort, rpcUrl: `http://127.0.0.1:${httpPort}/RPC`, fifo: k.jsonrpcFifo, replyDir,
    stop: async () => { await stop(); rmSync(replyDir, { recursive: true, force: true }); },
  });
}

// ------------------------------------------------------------------ rtpengine pods for the stand-in

/**
 * The stand-in's EndpointSlice controller derives the slices, as on a cluster: a Service selecting
 * `app=<service>` whose UDP port `ng` targets the container port named `ng` (a regular container, so
 * resolved on every server version), and one running pod per rtpengine with its own ng port.
 */
export function addRtpengineService(api: KubeApiServer, namespace: string, service: string, o: { control?: boolean } = {}): void {
  const ports = [{ name: 'ng', port: 2223, targetPort: 'ng', protocol: 'UDP' }, ...(o.control ? [{ name: 'control', port: 8080, targetPort: 'control', protocol: 'TCP' }] : [])];
  api.store.create('services', { metadata: { name: service, namespace }, spec: { selector: { app: service }, ports } });
}

/** A running, Ready (unless `ready: false`) rtpengine pod at `ip` (default 127.0.0.1) serving ng on `ngPort`. */
export function addRtpenginePod(api: KubeApiServer, namespace: string, service: string, name: string, ngPort: number, o: { ip?: string; ready?: boolean; controlPort?: number } = {}): void {
  const ports = [{ name: 'ng', containerPort: ngPort, protocol: 'UDP' }, ...(o.controlPort ? [{ name: 'control', containerPort: o.controlPort, protocol: 'TCP' }] : [])];
  api.store.addPod({
    namespace, name, nodeName: 'node-a', podIP: o.ip ?? '127.0.0.1', ready: o.ready ?? true, labels: { app: service },
    containers: [{ name: 'rtpengine', image: 'rtpengine', ports }],
  });
}

/** A pod starts terminating (graceful delete: deletionTimestamp set, the kubelet not done yet). */
export function terminatePod(api: KubeApiServer, namespace: string, name: string): void {
  api.store.delete('pods', namespace, name, { graceful: true });
}
