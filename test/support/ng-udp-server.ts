// Test peer for the ng client's tests: a thin UDP ng server that replies from the SAME socket the
// request arrived on (Kamailio's socket is connected: a reply from another port is dropped).
// Parsing is the caller's job; a throwing handler is logged, never fatal.
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { Logger } from '../../src/log.js';
import { NgError } from '../../src/errors.js';

export interface NgPeer { address: string; port: number; family: string }
export type NgHandler = (msg: Buffer, rinfo: NgPeer, reply: (bytes: Buffer) => void) => void | Promise<void>;

export interface NgServerOptions {
  host: string;
  /** 0 picks a free port (see address()). */
  port: number;
  log?: Logger;
  /** SO_RCVBUF / SO_SNDBUF in bytes; bursts of offers need more than the default. */
  bufferBytes?: number;
}

export class NgUdpServer {
  private closed = false;
  private constructor(private readonly socket: Socket, private readonly log?: Logger) {}

  static bind(opts: NgServerOptions, handler: NgHandler): Promise<NgUdpServer> {
    const log = opts.log?.child({ component: 'ng-server' });
    const socket = createSocket({ type: isIPv6(opts.host) ? 'udp6' : 'udp4', ...(opts.bufferBytes ? { recvBufferSize: opts.bufferBytes, sendBufferSize: opts.bufferBytes } : {}) });
    const server = new NgUdpServer(socket, log);
    return new Promise((resolve, reject) => {
      const onStartError = (err: Error) => {
        socket.close();
        reject(new NgError('NG_SOCKET', { peer: `${opts.host}:${opts.port}`, reason: `bind failed: ${err.message}` }, { cause: err }));
      };
      socket.once('error', onStartError);
      socket.bind(opts.port, opts.host, () => {
        socket.off('error', onStartError);
        socket.on('error', (err) => log?.warn({ err: err.message }, 'ng server socket error'));
        socket.on('message', (msg, rinfo) => server.dispatch(handler, msg, rinfo));
        resolve(server);
      });
    });
  }

  private dispatch(handler: NgHandler, msg: Buffer, rinfo: NgPeer): void {
    const peer: NgPeer = { address: rinfo.address, port: rinfo.port, family: rinfo.family };
    const reply = (bytes: Buffer) => {
      if (this.closed) return;
      this.socket.send(bytes, peer.port, peer.address, (err) => {
        if (err) this.log?.warn({ to: `${peer.address}:${peer.port}`, err: err.message, bytes: bytes.length }, 'ng reply not sent');
      });
    };
    try {
      const r = handler(msg, peer, reply);
      if (r && typeof (r as Promise<void>).catch === 'function') {
        (r as Promise<void>).catch((e: unknown) => this.log?.error({ err: (e as Error)?.message, from: `${peer.address}:${peer.port}` }, 'ng handler failed'));
      }
    } catch (e) {
      this.log?.error({ err: (e as Error)?.message, from: `${peer.address}:${peer.port}` }, 'ng handler failed');
    }
  }

  address(): { address: string; port: number; family: string } {
    const a = this.socket.address();
    return { address: a.address, port: a.port, family: a.family };
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
