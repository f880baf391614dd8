import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { isCoded } from '../errors.js';
import { NgUdpServer } from './server.js';
import { splitMessage, joinMessage } from './framing.js';

test('replies leave from the socket the request arrived on (a connected client socket accepts them)', async () => {
  const srv = await NgUdpServer.bind({ host: '127.0.0.1', port: 0 }, (msg, _rinfo, reply) => {
    reply(joinMessage(splitMessage(msg).cookie, Buffer.from('d6:result4:ponge')));
  });
  const { port } = srv.address();
  const cli = createSocket('udp4');
  try {
    // Like Kamailio: connect()ed, so the kernel drops datagrams from any other source.
    await new Promise<void>((r) => cli.connect(port, '127.0.0.1', () => r()));
    const got = once(cli, 'message');
    cli.send(Buffer.from('1_4711_0 d7:command4:pinge'));
    const [m, rinfo] = (await got) as [Buffer, { port: number }];
    assert.equal(m.toString(), '1_4711_0 d6:result4:ponge');
    assert.equal(rinfo.port, port);
  } finally {
    cli.close();
    await srv.close();
  }
});

test('a throwing or rejecting handler does not stop the server', async () => {
  let n = 0;
  const srv = await NgUdpServer.bind({ host: '127.0.0.1', port: 0 }, async (msg, _r, reply) => {
    n++;
    if (msg.toString().startsWith('boom')) throw new Error('handler bug');
    if (msg.toString().startsWith('reject')) return Promise.reject(new Error('async bug'));
    reply(Buffer.from('fine'));
  });
  const cli = createSocket('udp4');
  try {
    const { port } = srv.address();
    cli.send('boom d', port, '127.0.0.1');
    cli.send('reject d', port, '127.0.0.1');
    const got = once(cli, 'message');
    setTimeout(() => cli.send('ok d', port, '127.0.0.1'), 20);
    const [m] = (await got) as [Buffer];
    assert.equal(m.toString(), 'fine');
    assert.equal(n, 3);
  } finally {
    cli.close();
    await srv.close();
  }
});

test('binding a taken port is a coded NG_SOCKET error', async () => {
  const a = await NgUdpServer.bind({ host: '127.0.0.1', port: 0 }, () => {});
  try {
    await assert.rejects(NgUdpServer.bind({ host: '127.0.0.1', port: a.address().port }, () => {}), (e) => isCoded(e, 'NG_SOCKET'));
  } finally {
    await a.close();
  }
});

test('IPv6 loopback', async (t) => {
  let srv: NgUdpServer;
  try {
    srv = await NgUdpServer.bind({ host: '::1', port: 0 }, (msg, rinfo, reply) => reply(Buffer.from(rinfo.family)));
  } catch (e) {
    // No IPv6 loopback on this machine: skipped, except under CI where every real path must run.
    if (process.env.RTPE_K8S_REQUIRE_ALL === '1') throw e;
    t.skip(`no IPv6 loopback here: ${(e as Error).message}`);
    return;
  }
  const cli = createSocket('udp6');
  try {
    const got = once(cli, 'message');
    cli.send('c d', srv.address().port, '::1');
    const [m] = (await got) as [Buffer];
    assert.equal(m.toString(), 'IPv6');
  } finally {
    cli.close();
    await srv.close();
  }
});
