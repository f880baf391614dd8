// Free loopback ports for tests and benches: ask the kernel for an ephemeral port, then release
// it. UDP and TCP are both checked so a daemon can bind either.
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

function freeTcp(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function udpFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    s.once('error', () => resolve(false));
    s.bind(port, host, () => s.close(() => resolve(true)));
  });
}

const handedOut = new Set<number>();

/** A port free for both TCP and UDP on `host`, never returned twice by this process. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = await freeTcp(host);
    if (!handedOut.has(p) && (await udpFree(p, host))) {
      handedOut.add(p);
      return p;
    }
  }
  throw new Error('no free port found after 50 tries');
}

/** A block of `n` consecutive UDP ports (rtpengine's --port-min/--port-max), distinct per call. */
let nextBlock = 20000 + (process.pid % 200) * 100;
export async function freePortRange(n: number, host = '127.0.0.1'): Promise<{ min: number; max: number }> {
  for (let tries = 0; tries < 200; tries++) {
    const min = nextBlock;
    nextBlock += n + 10;
    if (nextBlock > 60000) nextBlock = 20000;
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
    const base = await freeTcp(host);
    if (base + n > 65535) continue;
    const ports = Array.from({ length: n }, (_, i) => base + i);
    if (ports.some((p) => handedOut.has(p))) continue;
    const ok = await Promise.all(ports.map(async (p) => (await udpFree(p, host)) && (await tcpFree(p, host))));
    if (ok.every(Boolean)) { for (const p of ports) handedOut.add(p); return base; }
  }
  throw new Error(`no block of ${n} free ports`);
}

function tcpFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}
