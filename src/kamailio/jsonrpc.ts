// Kamailio JSON-RPC (jsonrpcs module) behind one interface: over HTTP (xhttp + jsonrpc_dispatch)
// or over the jsonrpcs FIFO (request into fifo_name, reply read from a FIFO we create in
// fifo_reply_dir). RPC faults become coded errors carrying Kamailio's code and message.
import { constants, open as openFd } from 'node:fs';
import { promisify } from 'node:util';
import { open, unlink } from 'node:fs/promises';
import { Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { KamailioError } from '../errors.js';
import { processRunner, type Runner } from '../exec.js';

export interface KamailioRpc {
  /** `http` or `fifo`, for logs and errors. */
  readonly transport: string;
  call(method: string, params?: unknown[]): Promise<unknown>;
}

/** Kamailio's answer to `rtpengine.reload` inside its 10 s window (rtpengine.c RTPE_LIST_VERSION_DELAY). */
export const RELOAD_TOO_SOON = 'Too short reload interval';

/** True when an RPC error is Kamailio refusing a reload inside its 10 s window. */
export function isReloadTooSoon(e: unknown): boolean {
  return e instanceof KamailioError && typeof e.details.reason === 'string' && e.details.reason.includes(RELOAD_TOO_SOON);
}

let seq = 0;

function unwrap(method: string, transport: string, text: string): unknown {
  let doc: { result?: unknown; error?: { code?: number; message?: string } };
  try { doc = JSON.parse(text) as typeof doc; } catch {
    throw new KamailioError('KAMAILIO_RPC_FAILED', { method, transport, reason: `reply is not JSON: ${text.slice(0, 200)}` });
  }
  if (doc.error) {
    throw new KamailioError('KAMAILIO_RPC_FAILED', { method, transport, reason: `${doc.error.code ?? '?'} ${doc.error.message ?? ''}`.trim(), faultCode: doc.error.code });
  }
  return doc.result;
}

/** JSON-RPC over HTTP: POST to e.g. http://127.0.0.1:5071/RPC (the event_route[xhttp:request] path). */
export function httpRpc(url: string, opts: { timeoutMs?: number } = {}): KamailioRpc {
  const transport = 'http';
  return {
    transport,
    async call(method, params = []) {
      let res: Response;
      try {
        res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ jsonrpc: '2.0', method, params, id: ++seq }),
          signal: AbortSignal.timeout(opts.timeoutMs ?? 5000),
        });
      } catch (e) {
        const cause = (e as { cause?: { code?: string } }).cause?.code;
        throw new KamailioError('KAMAILIO_RPC_FAILED', { method, transport, url, reason: `${(e as Error).message}${cause ? ` (${cause})` : ''}` }, { cause: e });
      }
      const text = await res.text();
      if (!res.ok && !text.startsWith('{')) {
        throw new KamailioError('KAMAILIO_RPC_FAILED', { method, transport, url, reason: `HTTP ${res.status}: ${text.slice(0, 200)}` });
      }
      return unwrap(method, transport, text);
    },
  };
}

/**
 * JSON-RPC over the jsonrpcs FIFO. `replyDir` must be the module's `fifo_reply_dir` verbatim
 * (with its trailing slash: Kamailio appends the name without adding one); the reply FIFO
 * is created there before the request is written (Kamailio opens it non-blocking and gives up if
 * nobody reads), and removed afterwards. Calls are serialized: one FIFO conversation at a time.
 */
export function fifoRpc(fifoPath: string, replyDir: string, opts: { timeoutMs?: number; runner?: Runner } = {}): KamailioRpc {
  const transport = 'fifo';
  const runner = opts.runner ?? processRunner;
  let chain: Promise<unknown> = Promise.resolve();

  async function once(method: string, params: unknown[]): Promise<unknown> {
    // jsonrpcs forbids '.' and '/' in reply_name.
    const replyName = `rtpek8s_${process.pid}_${randomBytes(4).toString('hex')}`;
    // Kamailio concatenates fifo_reply_dir and reply_name as they are: mirror that exactly.
    const replyPath = replyDir + replyName;
    const fail = (reason: string, e?: unknown) =>
      new KamailioError('KAMAILIO_RPC_FAILED', { method, transport, fifo: fifoPath, reason }, { cause: e });
    const mk = await runner.run('mkfifo', ['-m', '0660', replyPath]);
    if (mk.code !== 0) throw fail(`mkfifo ${replyPath}: ${mk.stderr.trim()}`);
    let sock: Socket | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      // Non-blocking read end first, so Kamailio's non-blocking open for writing finds a reader.
      // A raw fd (not a FileHandle): the socket owns and closes it.
      const rfd = await promisify(openFd)(replyPath, constants.O_RDONLY | constants.O_NONBLOCK);
      sock = new Socket({ fd: rfd, readable: true, writable: false });
      const reply = new Promise<string>((resolve, reject) => {
        let buf = '';
        timer = setTimeout(() => reject(fail(`no reply within ${opts.timeoutMs ?? 5000} ms`)), opts.timeoutMs ?? 5000);
        sock!.setEncoding('utf8');
        sock!.on('data', (c: string) => { buf += c; });
        sock!.on('end', () => { clearTimeout(timer); resolve(buf); });
        sock!.on('error', (e) => { clearTimeout(timer); reject(fail(e.message, e)); });
      });
      reply.catch(() => undefined); // awaited below; a failed write must not leave it unhandled
      let wfh;
      try {
        wfh = await open(fifoPath, constants.O_WRONLY | constants.O_NONBLOCK);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw fail(code === 'ENXIO' ? 'no reader on the FIFO (is Kamailio running with jsonrpcs transport 0 or 2?)' : (e as Error).message, e);
      }
      try {
        await wfh.write(JSON.stringify({ jsonrpc: '2.0', method, params, reply_name: replyName, id: ++seq }) + '\n');
      } finally {
        await wfh.close();
      }
      return unwrap(method, transport, await reply);
    } finally {
      clearTimeout(timer);
      sock?.destroy();
      await unlink(replyPath).catch(() => undefined);
    }
  }

  return {
    transport,
    call(method, params = []) {
      const p = chain.then(() => once(method, params));
      chain = p.catch(() => undefined);
      return p;
    },
  };
}

/** One node as `rtpengine.show all` reports it. */
export interface ShownNode { url: string; set: number; index: number; weight: number; disabled: number | string | boolean; recheck_ticks?: number | string }

/** `rtpengine.show all` → nodes (hidden, i.e. removed, nodes are not listed by Kamailio). */
export async function showNodes(rpc: KamailioRpc): Promise<ShownNode[]> {
  const r = await rpc.call('rtpengine.show', ['all']);
  if (Array.isArray(r)) return r as ShownNode[];
  if (r && typeof r === 'object') return [r as ShownNode];
  return [];
}
