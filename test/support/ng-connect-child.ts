// Child process for the "never sent" test: one NgUdpClient to argv host:port, two requests one
// after the other; prints each outcome's error code (or "reply") as a JSON line.
import { NgUdpClient } from '../../src/ng/client.js';

const c = new NgUdpClient({ host: process.argv[2]!, port: Number(process.argv[3]), timeoutMs: 2000, retries: 2 });
for (let i = 0; i < 2; i++) {
  const out = await c.request({ command: 'ping' }).then(() => ({ outcome: 'reply' }), (e: { code?: string; message?: string }) => ({ outcome: e.code, message: e.message }));
  process.stdout.write(JSON.stringify(out) + '\n');
}
c.close();
