// Free loopback ports for tests and benches. Every port handed out lies below the kernel's
// ephemeral range (32768–60999 by default): a port taken from that range and released can be
// bound again at any moment by any socket that binds port 0 or connects (an ng client, SIPp,
// Kamailio, another test file running at the same time) before the daemon under test binds it —
// seen in CI as RTPENGINE_PORT_TAKEN. Single ports come from 10000–19999, blocks for media ranges
// from 20000–31999, each process starting at its own offset; UDP and TCP are both checked so a
// daemon can bind either.
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

function udpFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    s.once('error', () => resolve(false));
    s.bind(port, host, () => s.close(() => resolve(true)));
  });
}

function tcpFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}

const handedOut = new Set<number>();
const SINGLE = { min: 10000, max: 19999 };
const BLOCKS = { min: 20000, max: 31999 };
let nextSingle = SINGLE.min + (process.pid % 100) * 100;

/** The next `n` consecutive single-port candidates (wrapping inside SINGLE). */
function nextSingles(n: number): number {
  if (nextSingle + n - 1 > SINGLE.max) nextSingle = SINGLE.min;
  const base = nextSingle;
  nextSingle += n;
  return base;
}

/** A port free for both TCP and UDP on `host`, never returned twice by this process. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let i = 0; i < SINGLE.max - SINGLE.min; i++) {
    const p = nextSingles(1);
    if (!handedOut.has(p) && (await udpFree(p, host)) && (await tcpFree(p, host))) {
      handedOut.add(p);
      return p;
    }
  }
  throw new Error(`no free port in ${SINGLE.min}-${SINGLE.max}`);
}

/** A block of `n` consecutive UDP ports (rtpengine's --port-min/--port-max), distinct per call. */
let nextBlock = BLOCKS.min + (process.pid % 100) * 100;
export async function freePortRange(n: number, host = '127.0.0.1'): Promise<{ min: number; max: number }> {
  for (let tries = 0; tries < 200; tries++) {
    if (nextBlock + n - 1 > BLOCKS.max) nextBlock = BLOCKS.min;
    const min = nextBlock;
    nextBlock += n + 10;
    const checks = await Promise.all([min, min + Math.floor(n / 2), min + n - 1].map((p) => udpFree(p, host)));
    if (checks.every(Boolean)) return { min, max: min + n - 1 };
  }
  throw new Error(`no free block of ${n} UDP ports`);
}

/**
 * `n` consecutive ports, each free for both TCP and UDP on `host`, none handed out before: for a
 * program that numbers its ports from a base (`rtpengine-k8s local`: pod i uses base + i).
 */
export async function freePortBlock(n: number, host = '127.0.0.1'): Promise<number> {
  for (let tries = 0; tries < 200; tries++) {
    const base = nextSingles(n);
    const ports = Array.from({ length: n }, (_, i) => base + i);
    if (ports.some((p) => handedOut.has(p))) continue;
    const ok = await Promise.all(ports.map(async (p) => (await udpFree(p, host)) && (await tcpFree(p, host))));
    if (ok.every(Boolean)) { for (const p of ports) handedOut.add(p); return base; }
  }
  throw new Error(`no block of ${n} free ports`);
}
