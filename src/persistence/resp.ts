// A minimal Redis client (RESP2 over TCP) for the few commands the sidecar needs around rtpengine's
// call persistence: PING, SELECT, GET/SET/DEL, KEYS, DBSIZE, FLUSHDB. One connection, one command
// at a time, every call bounded by a timeout. rtpengine itself talks to Redis with hiredis.
import { createConnection, type Socket } from 'node:net';
import { PersistenceError } from '../errors.js';

export type RespValue = string | number | null | RespValue[] | { error: string };

export interface RedisTarget { host: string; port: number; db: number; password?: string }

/** `redis://[:password@]host:port/db` → target; undefined when malformed. */
export function parseRedisUrl(url: string): RedisTarget | undefined {
  const m = /^redis:\/\/(?::([^@/]*)@)?(\[[0-9A-Fa-f:.]+\]|[^:/@[\]]+):(\d{1,5})\/(\d{1,5})$/.exec(url.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: m[2]!.replace(/^\[|\]$/g, ''), port, db: Number(m[4]), password: m[1] || undefined };
}

/** How rtpengine's `--redis` spells the same target: `[PW@]IP:PORT/DB`. */
export function rtpengineRedisValue(t: RedisTarget): string {
  const host = t.host.includes(':') ? `[${t.host}]` : t.host;
  return `${t.password ? `${t.password}@` : ''}${host}:${t.port}/${t.db}`;
}

function encode(args: readonly string[]): Buffer {
  const parts = [`*${args.length}\r\n`];
  for (const a of args) parts.push(`$${Buffer.byteLength(a)}\r\n${a}\r\n`);
  return Buffer.from(parts.join(''));
}

/** Parses one RESP value at `at`; undefined when the buffer does not hold all of it yet. */
function parse(b: Buffer, at: number): { value: RespValue; end: number } | undefined {
  const nl = b.indexOf('\r\n', at);
  if (nl < 0) return undefined;
  const type = String.fromCharCode(b[at]!);
  const line = b.toString('utf8', at + 1, nl);
  if (type === '+') return { value: line, end: nl + 2 };
  if (type === '-') return { value: { error: line }, end: nl + 2 };
  if (type === ':') return { value: Number(line), end: nl + 2 };
  if (type === '$') {
    const n = Number(line);
    if (n < 0) return { value: null, end: nl + 2 };
    if (b.length < nl + 2 + n + 2) return undefined;
    return { value: b.toString('utf8', nl + 2, nl + 2 + n), end: nl + 2 + n + 2 };
  }
  if (type === '*') {
    const n = Number(line);
    if (n < 0) return { value: null, end: nl + 2 };
    const out: RespValue[] = [];
    let pos = nl + 2;
    for (let i = 0; i < n; i++) {
      const r = parse(b, pos);
      if (!r) return undefined;
      out.push(r.value);
      pos = r.end;
    }
    return { value: out, end: pos };
  }
  throw new PersistenceError('PERSISTENCE_REDIS_PROTOCOL', { reason: `unexpected reply type byte ${b[at]}` });
}

export class RedisClient {
  private buf: Buffer = Buffer.alloc(0);
  private waiting: { resolve(v: RespValue): void; reject(e: Error): void } | undefined;
  private closed = false;

  private constructor(private readonly sock: Socket, readonly target: RedisTarget, private readonly timeoutMs: number) {
    sock.on('data', (d: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      const w = this.waiting;
      if (!w) return;
      let r;
      try { r = parse(this.buf, 0); } catch (e) { this.waiting = undefined; w.reject(e as Error); return; }
      if (!r) return;
      this.buf = this.buf.subarray(r.end);
      this.waiting = undefined;
      w.resolve(r.value);
    });
    const fail = (why: string) => {
      this.closed = true;
      const w = this.waiting;
      this.waiting = undefined;
      w?.reject(new PersistenceError('PERSISTENCE_REDIS_DOWN', { redis: `${target.host}:${target.port}/${target.db}`, reason: why }));
    };
    sock.on('error', (e) => fail(e.message));
    sock.on('close', () => fail('connection closed'));
  }

  /** Connects, authenticates when a password is given, and selects the database. */
  static async connect(target: RedisTarget, timeoutMs = 1000): Promise<RedisClient> {
    const where = `${target.host}:${target.port}/${target.db}`;
    const sock = await new Promise<Socket>((resolve, reject) => {
      const s = createConnection({ host: target.host, port: target.port });
      const t = setTimeout(() => { s.destroy(); reject(new PersistenceError('PERSISTENCE_REDIS_DOWN', { redis: where, reason: `no connection within ${timeoutMs} ms` })); }, timeoutMs);
      s.once('connect', () => { clearTimeout(t); s.removeAllListeners('error'); resolve(s); });
      s.once('error', (e) => { clearTimeout(t); reject(new PersistenceError('PERSISTENCE_REDIS_DOWN', { redis: where, reason: e.message })); });
    });
    sock.setNoDelay(true);
    const c = new RedisClient(sock, target, timeoutMs);
    try {
      if (target.password) await c.ok(['AUTH', target.password]);
      await c.ok(['SELECT', String(target.db)]);
    } catch (e) { c.close(); throw e; }
    return c;
  }

  /** One command; a Redis error reply is thrown as PERSISTENCE_REDIS_ERROR. */
  async command(args: readonly string[]): Promise<RespValue> {
    if (this.closed) throw new PersistenceError('PERSISTENCE_REDIS_DOWN', { redis: this.where, reason: 'connection closed' });
    if (this.waiting) throw new PersistenceError('PERSISTENCE_REDIS_PROTOCOL', { reason: 'one command at a time' });
    const v = await new Promise<RespValue>((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiting = undefined;
        this.close();
        reject(new PersistenceError('PERSISTENCE_REDIS_DOWN', { redis: this.where, reason: `${args[0]} not answered within ${this.timeoutMs} ms` }));
      }, this.timeoutMs);
      this.waiting = { resolve: (x) => { clearTimeout(t); resolve(x); }, reject: (e) => { clearTimeout(t); reject(e); } };
      const data = encode(args);
      // A socket write is all-or-queued: net.Socket buffers what the kernel did not take.
      this.sock.write(data);
    });
    if (v && typeof v === 'object' && !Array.isArray(v)) throw new PersistenceError('PERSISTENCE_REDIS_ERROR', { command: args[0], reason: v.error });
    return v;
  }

  private async ok(args: readonly string[]): Promise<void> { await this.command(args); }

  get where(): string { return `${this.target.host}:${this.target.port}/${this.target.db}`; }

  async get(key: string): Promise<string | null> { return (await this.command(['GET', key])) as string | null; }
  async set(key: string, value: string): Promise<void> { await this.command(['SET', key, value]); }
  async del(...keys: string[]): Promise<number> { return keys.length ? (await this.command(['DEL', ...keys])) as number : 0; }
  async keys(): Promise<string[]> { return (await this.command(['KEYS', '*'])) as string[]; }
  async dbsize(): Promise<number> { return (await this.command(['DBSIZE'])) as number; }

  close(): void {
    this.closed = true;
    this.sock.destroy();
  }
}
