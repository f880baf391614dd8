// Child process for the "send refused on a connected socket" test, run inside a network namespace
// the test creates: a pong peer on 127.0.0.1:<port>, one NgUdpClient to it; a request, then the
// namespace's firewall drops datagrams to the peer (the kernel refuses the send: EPERM), a request,
// the rule removed, a request; then six at once with every second datagram dropped. Prints each
// outcome's error code (or "reply") as a JSON line, the six as one line.
import { execFileSync } from 'node:child_process';
import { NgUdpClient } from '../../src/ng/client.js';
import { NgUdpServer } from './ng-udp-server.js';

const port = Number(process.argv[2]);
const rule = ['OUTPUT', '-p', 'udp', '-d', '127.0.0.1', '--dport', String(port), '-j', 'DROP'];
const peer = await NgUdpServer.bind({ host: '127.0.0.1', port }, (msg, _from, reply) => {
  const sp = msg.indexOf(0x20);
  reply(Buffer.concat([msg.subarray(0, sp + 1), Buffer.from('d6:result4:ponge')]));
});
// A timeout far above the test's own run time: an outcome before it is not a timeout.
const c = new NgUdpClient({ host: '127.0.0.1', port, timeoutMs: 20_000, retries: 2 });
const ask = () => c.request({ command: 'ping' }).then(() => ({ outcome: 'reply' }), (e: { code?: string; message?: string }) => ({ outcome: e.code, message: e.message }));
const out = (o: object) => process.stdout.write(JSON.stringify(o) + '\n');
out(await ask());
execFileSync('iptables', ['-w', '-A', ...rule]);
out(await ask());
execFileSync('iptables', ['-w', '-D', ...rule]);
out(await ask());
// Six at once with every second datagram dropped (the first included): the outcomes in send order.
const nth = ['OUTPUT', '-p', 'udp', '-d', '127.0.0.1', '--dport', String(port), '-m', 'statistic', '--mode', 'nth', '--every', '2', '--packet', '0', '-j', 'DROP'];
execFileSync('iptables', ['-w', '-A', ...nth]);
out({ outcome: await Promise.all(Array.from({ length: 6 }, () => ask().then((o) => o.outcome))) });
execFileSync('iptables', ['-w', '-D', ...nth]);
c.close();
peer.close();
