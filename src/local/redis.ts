// The local runs' Redis for call persistence: Debian's redis-server on a loopback port, one per run,
// nothing saved to disk (calls live as long as the run), one database per pod (ADR 0042).
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { startChild, type Child } from './children.js';
import { RedisClient } from '../persistence/resp.js';

/** Databases the local Redis has: one per pod created in a run, reused round-robin after that. */
export const LOCAL_REDIS_DATABASES = 64;

export interface LocalRedis {
  port: number;
  child: Child;
  /** The pod's database URL for `--persistence-redis`. */
  url(db: number): string;
  stop(): Promise<void>;
}

export async function startLocalRedis(o: { dir: string; port: number; binary?: string }): Promise<LocalRedis> {
  const dir = join(o.dir, 'redis');
  await mkdir(dir, { recursive: true });
  const child = startChild('redis-server', o.binary ?? 'redis-server', ['--port', String(o.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', dir, '--databases', String(LOCAL_REDIS_DATABASES)], { logFile: join(o.dir, 'redis.log') });
  for (let i = 0; ; i++) {
    try { (await RedisClient.connect({ host: '127.0.0.1', port: o.port, db: 0 }, 300)).close(); break; } catch { /* not yet */ }
    if (!child.alive() || i > 100) { await child.stop('SIGKILL'); throw new Error(`redis-server did not start on 127.0.0.1:${o.port}: ${child.tail().slice(-1000)}`); }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { port: o.port, child, url: (db) => `redis://127.0.0.1:${o.port}/${db % LOCAL_REDIS_DATABASES}`, stop: async () => { await child.stop('SIGTERM', 3000); } };
}
