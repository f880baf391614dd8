// A no-parse UDP ng relay: forwards each datagram to rtpengine unchanged and routes replies back
// by cookie alone. The floor for any Node proxy in the 'proxy' bench; e2e tests also use its
// `dropReply`/`dropRequest` hooks to lose chosen datagrams on a path (test-only fault injection).
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';

export interface RawRelayOptions {
  listenHost?: string;
  listenPort?: number;
  upstreamHost: string;
  upstreamPort: number;
  /** Return true to drop this reply (n counts replies from 1). */
  dropReply?: (msg: Buffer, n: number) => boolean;
  /** Return true to drop this request (n counts requests from 1). */
  dropRequest?: (msg: Buffer, n: number) => boolean;
}

export interface RawRelay { host: string; port: number; forwarded: number; dropped: number; close(): Promise<void> }

export async function startRawRelay(o: RawRelayOptions): Promise<RawRelay> {
  const host = o.listenHost ?? '127.0.0.1';
  const down: Socket = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
  const up: Socket = createSocket(isIPv6(o.upstreamHost) ? 'udp6' : 'udp4');
  // cookie -> sender; entries go when the reply is relayed (a lost reply leaves one: fine here).
  const senders = new Map<string, { address: string; port: number }>();
  const stats = { forwarded: 0, dropped: 0 };
  let nReq = 0;
  let nRep = 0;
  down.on('message', (msg, ri) => {
    const sp = msg.indexOf(0x20);
    if (sp <= 0) return;
    if (o.dropRequest?.(msg, ++nReq)) { stats.dropped++; return; }
    senders.set(msg.toString('latin1', 0, sp), { address: ri.address, port: ri.port });
    stats.forwarded++;
    up.send(msg, o.upstreamPort, o.upstreamHost);
  });
  up.on('message', (msg) => {
    const sp = msg.indexOf(0x20);
    if (sp <= 0) return;
    if (o.dropReply?.(msg, ++nRep)) { stats.dropped++; return; }
    const c = msg.toString('latin1', 0, sp);
    const s = senders.get(c);
    if (!s) return;
    senders.delete(c);
    down.send(msg, s.port, s.address);
  });
  down.on('error', () => {});
  up.on('error', () => {});
  await new Promise<void>((r) => down.bind(o.listenPort ?? 0, host, () => r()));
  await new Promise<void>((r) => up.bind(0, isIPv6(o.upstreamHost) ? '::1' : '127.0.0.1', () => r()));
  return {
    host,
    port: down.address().port,
    get forwarded() { return stats.forwarded; },
    get dropped() { return stats.dropped; },
    close: async () => {
      await Promise.all([new Promise<void>((r) => down.close(() => r())), new Promise<void>((r) => up.close(() => r()))]);
    },
  };
}

// Child-process entry for the 'proxy' bench, so the load generator does not share an event loop
// with what it measures:  node --import tsx bench/raw-relay.ts relay|proxy <upstreamPort> [listenPort]
// Prints `ready <port>` on stdout, runs until stdin closes.
async function main(): Promise<void> {
  const [mode, up, listen] = process.argv.slice(2);
  const upstreamPort = Number(up);
  const listenPort = Number(listen ?? 0);
  let close: () => Promise<void>;
  let port: number;
  if (mode === 'relay') {
    const r = await startRawRelay({ upstreamHost: '127.0.0.1', upstreamPort, listenPort });
    port = r.port;
    close = r.close;
  } else if (mode === 'proxy') {
    const { startNgProxy } = await import('../src/sidecar/proxy.js');
    const { proxyConfigWith } = await import('../src/sidecar/proxy-options.js');
    const { createRegistry } = await import('../src/metrics.js');
    const { silentLogger } = await import('../src/log.js');
    const p = await startNgProxy(proxyConfigWith({ ngListen: [`127.0.0.1:${listenPort}`], ngUpstream: `127.0.0.1:${upstreamPort}`, deleteDelaySeconds: 0 }),
      { log: silentLogger, registry: createRegistry({ defaultMetrics: false }) });
    port = p.addresses[0]!.port;
    close = p.close;
  } else {
    process.stderr.write('usage: raw-relay.ts relay|proxy <upstreamPort> [listenPort]\n');
    process.exit(64);
  }
  process.stdout.write(`ready ${port}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => { void close().then(() => process.exit(0)); });
}

const { pathToFileURL } = await import('node:url');
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
