import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { isCoded } from '../errors.js';
import { NgStreamDecoder, NgTcpClient } from './tcp.js';
import { splitMessage, joinMessage } from './framing.js';
import { decodeDict, str } from './codec.js';

const b = (s: string) => Buffer.from(s, 'latin1');
const texts = (ms: Buffer[]) => ms.map((m) => m.toString('latin1'));

test('two messages in one segment are both delivered', () => {
  const d = new NgStreamDecoder();
  assert.deepEqual(texts(d.push(b('a1 d6:result4:ponge' + 'a2 d6:result2:ok3:sdp5:v=0 xe'))), ['a1 d6:result4:ponge', 'a2 d6:result2:ok3:sdp5:v=0 xe']);
  assert.equal(d.buffered, 0);
});

test('a partial message waits, byte by byte, including a split length prefix and cookie', () => {
  const d = new NgStreamDecoder();
  const msg = 'cookie_1 d5:callsl2:c12:c2e6:result2:oke';
  const got: Buffer[] = [];
  for (const ch of msg + msg) got.push(...d.push(b(ch)));
  assert.deepEqual(texts(got), [msg, msg]);
});

test('a 30 KB offer in 1-byte segments, then two more messages in one large segment', () => {
  const d = new NgStreamDecoder();
  const big = `big d7:command5:offer3:sdp30000:${'v'.repeat(30000)}e`;
  const got: Buffer[] = [];
  for (let i = 0; i < big.length; i++) got.push(...d.push(b(big[i]!)));
  assert.deepEqual(got.map((g) => g.length), [big.length]);
  assert.equal(d.buffered, 0);
  // Several messages totalling more than the buffer limit in one chunk are fine: only leftovers count.
  const small = new NgStreamDecoder({ maxBuffered: 100 });
  const many = Array.from({ length: 20 }, (_, i) => `c${i} d6:result4:ponge`).join('');
  assert.equal(small.push(b(many)).length, 20);
});

test('a string value containing "e" and spaces does not end the message early', () => {
  const d = new NgStreamDecoder();
  assert.deepEqual(d.push(b('k d3:sdp10:e e e e ee')), []);
  assert.deepEqual(texts(d.push(b('e'))), ['k d3:sdp10:e e e e eee']);
});

test('JSON bodies (rtpengine DTMF notifications) are framed by bracket balance, braces in strings ignored', () => {
  const d = new NgStreamDecoder();
  const n = '0123456789abcdef {"notify":"onDTMF","data":{"s":"}\\"{","l":[1,{"x":2}]}}';
  assert.deepEqual(d.push(b(n.slice(0, 30))), []);
  assert.deepEqual(texts(d.push(b(n.slice(30) + 'c2 d6:result4:ponge'))), [n, 'c2 d6:result4:ponge']);
});

test('line breaks between messages are tolerated', () => {
  const d = new NgStreamDecoder();
  assert.deepEqual(texts(d.push(b('a d1:xi1ee\r\nb d1:xi2ee\n'))), ['a d1:xi1ee', 'b d1:xi2ee']);
});

test('a corrupt stream is a coded error (the connection should be closed)', () => {
  const cases: Array<[string, string]> = [
    [' d6:result4:ponge', 'NG_NO_COOKIE'],
    ['c xyz', 'NG_BAD_FORMAT'],
    ['c d6:resulti1.5ee', 'NG_BENCODE_INVALID'],
    [`c d1:a${'l'.repeat(40)}`, 'NG_TOO_DEEP'],
    ['x'.repeat(300), 'NG_COOKIE_TOO_LONG'],
  ];
  for (const [s, c] of cases) assert.throws(() => new NgStreamDecoder().push(b(s)), (e) => isCoded(e, c as never), s.slice(0, 30));
});

test('more than the limit buffered without a complete message → NG_TCP_BUFFER', () => {
  const d = new NgStreamDecoder({ maxBuffered: 1024, peer: 'p' });
  assert.deepEqual(d.push(b('c d3:sdp2000:')), []);
  assert.deepEqual(d.push(b('x'.repeat(1000))), []);
  assert.throws(() => d.push(b('x'.repeat(100))), (e) => isCoded(e, 'NG_TCP_BUFFER') && e.details.max === 1024 && e.details.peer === 'p');
});

test('a huge length prefix is held only up to the limit', () => {
  const d = new NgStreamDecoder();
  assert.throws(() => d.push(b('c d3:sdp99999999999:')), (e) => isCoded(e, 'NG_BENCODE_INVALID'));
  const d2 = new NgStreamDecoder({ maxBuffered: 100 });
  assert.deepEqual(d2.push(b('c d3:sdp999999:')), []);
  assert.throws(() => d2.push(b('y'.repeat(100))), (e) => isCoded(e, 'NG_TCP_BUFFER'));
});

/** A TCP ng peer: frames with the decoder, answers with a scripted reply per message. */
async function tcpPeer(answer: (msg: Buffer, sock: Socket) => void): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    const d = new NgStreamDecoder();
    sock.on('data', (c: Buffer) => { for (const m of d.push(c)) answer(m, sock); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, port: (server.address() as { port: number }).port, sockets };
}
const close = (s: Server, sockets: Set<Socket>) => { for (const k of sockets) k.destroy(); return new Promise((r) => s.close(r)); };

test('TCP client: many in flight, replies coalesced into one segment are all matched', async () => {
  const held: Buffer[] = [];
  const p = await tcpPeer((m, sock) => {
    const { cookie, dict } = splitMessage(m);
    held.push(joinMessage(cookie, Buffer.from(`d6:result2:ok1:n${str(decodeDict(dict).n)!.length}:${str(decodeDict(dict).n)}e`)));
    if (held.length === 10) sock.write(Buffer.concat(held.splice(0).reverse()));
  });
  const c = new NgTcpClient({ host: '127.0.0.1', port: p.port });
  try {
    const rs = await Promise.all(Array.from({ length: 10 }, (_, i) => c.command({ command: 'query', n: String(i) })));
    rs.forEach((r, i) => assert.equal(r.n, String(i)));
  } finally {
    c.close();
    await close(p.server, p.sockets);
  }
});

test('TCP client: reconnects after the server drops the connection; pending requests fail coded', async () => {
  let dropNext = true;
  const p = await tcpPeer((m, sock) => {
    if (dropNext) { dropNext = false; sock.destroy(); return; }
    sock.write(joinMessage(splitMessage(m).cookie, b('d6:result4:ponge')));
  });
  const c = new NgTcpClient({ host: '127.0.0.1', port: p.port, timeoutMs: 2000 });
  try {
    await assert.rejects(c.request({ command: 'ping' }), (e) => isCoded(e, 'NG_SOCKET'));
    assert.deepEqual(await c.command({ command: 'ping' }), { result: 'pong' });
  } finally {
    c.close();
    await close(p.server, p.sockets);
  }
});

test('TCP client: unsolicited messages go to onUnsolicited; JSON requests are refused (rtpengine cannot frame them)', async () => {
  const extra: string[] = [];
  const p = await tcpPeer((m, sock) => {
    sock.write(b('ffffffffffffffff {"notify":"onDTMF","data":{}}'));
    sock.write(joinMessage(splitMessage(m).cookie, b('d6:result4:ponge')));
  });
  const c = new NgTcpClient({ host: '127.0.0.1', port: p.port, onUnsolicited: (m) => extra.push(m.toString()) });
  try {
    assert.deepEqual(await c.command({ command: 'ping' }), { result: 'pong' });
    assert.deepEqual(extra, ['ffffffffffffffff {"notify":"onDTMF","data":{}}']);
    await assert.rejects(c.request(b('{"command":"ping"}')), (e) => isCoded(e, 'NG_BAD_FORMAT'));
  } finally {
    c.close();
    await close(p.server, p.sockets);
  }
});

test('TCP client: nothing listening → NG_SOCKET; timeout → NG_TIMEOUT', async () => {
  const p = await tcpPeer(() => {});
  const port = p.port;
  const c = new NgTcpClient({ host: '127.0.0.1', port, timeoutMs: 30, retries: 2 });
  try {
    await assert.rejects(c.request({ command: 'ping' }), (e) => isCoded(e, 'NG_TIMEOUT') && e.details.attempts === 2);
  } finally {
    c.close();
    await close(p.server, p.sockets);
  }
  const dead = new NgTcpClient({ host: '127.0.0.1', port, timeoutMs: 1000 });
  try {
    await assert.rejects(dead.request({ command: 'ping' }), (e) => isCoded(e, 'NG_SOCKET'));
  } finally {
    dead.close();
  }
});
