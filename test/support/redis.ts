// Debian's redis-server on a free loopback port for tests and benches: no RDB/AOF files, its own
// temporary directory, stopped with SIGTERM. `stop()` then `start()` again gives a Redis that is down.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { RedisClient } from '../../src/persistence/resp.js';

export interface RedisHandle {
  host: string;
  port: number;
  url(db: number): string;
  stop(): Promise<void>;
}

export async function startRedis(): Promise<RedisHandle> {
  const host = '127.0.0.1';
  const port = await freePort(host);
  const dir = await mkdtemp(join(tmpdir(), 'redis-'));
  const proc: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', host, '--save', '', '--appendonly', 'no', '--dir', dir, '--databases', '64'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (c) => { out += c; });
  proc.stderr!.on('data', (c) => { out += c; });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  for (let i = 0; ; i++) {
    try { (await RedisClient.connect({ host, port, db: 0 }, 300)).close(); break; } catch { /* not yet */ }
    if (proc.exitCode !== null || i > 100) throw new Error(`redis-server did not start: ${out.slice(-1000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    host, port,
    url: (db) => `redis://${host}:${port}/${db}`,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) { proc.kill('SIGTERM'); await exited; }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
