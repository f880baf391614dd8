// ng protocol figures: codec ops/s on a realistic 1.5 KB offer, the proxy's routing scan on a
// 1.2 KB offer (goal ≤ 1.5 µs), and UDP client round trips against a real rtpengine.
import { randomBytes } from 'node:crypto';
import type { Row, Suite } from './suite.js';
import { median, summarize } from './stats.js';
import { decodeDict, encodeDict } from '../src/ng/codec.js';
import { scanRouting } from '../src/ng/scan.js';
import { sampleOffer, sampleSdp } from '../test/support/ng-sample.js';
import { NgUdpClient } from '../src/ng/client.js';
import { startRtpengine } from '../test/support/rtpengine.js';

let sink = 0;

/** ns per op of `fn`, measured over `ms` of wall time after a warm-up; median over `runs`. */
function timeOps(fn: () => void, runs: number, ms: number): number[] {
  for (let i = 0; i < 20_000; i++) fn();
  const perOp: number[] = [];
  for (let r = 0; r < runs; r++) {
    let n = 0;
    const t0 = process.hrtime.bigint();
    const stop = t0 + BigInt(ms * 1e6);
    let now = t0;
    while (now < stop) {
      for (let i = 0; i < 1000; i++) fn();
      n += 1000;
      now = process.hrtime.bigint();
    }
    perOp.push(Number(now - t0) / n);
  }
  return perOp;
}

interface Trip { opsPerSec: number; p50: number; p99: number }

/** `total` operations with `concurrency` in flight; per-op latency in ms. */
async function roundTrips(op: (i: number) => Promise<void>, total: number, concurrency: number): Promise<Trip> {
  const lat: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) {
      const i = next++;
      const s = performance.now();
      await op(i);
      lat.push(performance.now() - s);
    }
  }));
  const secs = (performance.now() - t0) / 1000;
  const s = summarize(lat);
  return { opsPerSec: total / secs, p50: s.p50, p99: s.p99 };
}

const suite: Suite = {
  name: 'ng',
  needs: ['rtpengine'],
  async run(ctx) {
    const rows: Row[] = [];
    const runs = ctx.quick ? 3 : 7;
    const ms = ctx.quick ? 150 : 400;

    const offer15 = encodeDict(sampleOffer(1500));
    const obj15 = sampleOffer(1500);
    const offer12 = encodeDict(sampleOffer(1200));
    ctx.log(`offer sizes: ${offer15.length} B (codec), ${offer12.length} B (scan)`);

    const dec = timeOps(() => { sink ^= Object.keys(decodeDict(offer15)).length; }, runs, ms);
    rows.push({ suite: 'ng', name: `decode ${offer15.length} B offer (bencode)`, unit: 'ops/s', value: 1e9 / median(dec), p99: 1e9 / Math.max(...dec), note: 'p99 column = slowest run' });
    const enc = timeOps(() => { sink ^= encodeDict(obj15).length; }, runs, ms);
    rows.push({ suite: 'ng', name: `encode ${offer15.length} B offer (bencode)`, unit: 'ops/s', value: 1e9 / median(enc), p99: 1e9 / Math.max(...enc), note: 'p99 column = slowest run' });
    const json15 = Buffer.from(JSON.stringify(obj15));
    const decJ = timeOps(() => { sink ^= Object.keys(decodeDict(json15)).length; }, runs, ms);
    rows.push({ suite: 'ng', name: `decode ${json15.length} B offer (JSON)`, unit: 'ops/s', value: 1e9 / median(decJ), p99: 1e9 / Math.max(...decJ), note: 'p99 column = slowest run' });
    const scan = timeOps(() => { sink ^= scanRouting(offer12).callId!.length; }, runs, ms);
    const scanUs = median(scan) / 1000;
    rows.push({ suite: 'ng', name: `scanRouting ${offer12.length} B offer`, unit: 'µs', value: scanUs, p99: Math.max(...scan) / 1000, goal: '≤ 1.5 µs', met: scanUs <= 1.5, note: 'p99 = slowest run mean' });

    const rtpe = await startRtpengine({ ports: 400 });
    const client = new NgUdpClient({ host: rtpe.host, port: rtpe.ngPort, timeoutMs: 2000, retries: 1 });
    try {
      const run = randomBytes(4).toString('hex');
      const sdp = sampleSdp();
      const ping = async () => { const r = await client.command({ command: 'ping' }); if (r.result !== 'pong') throw new Error('no pong'); };
      const call = async (i: number) => {
        const id = `b-${run}-${i}@pbx`;
        await client.command({ command: 'offer', 'call-id': id, 'from-tag': 'f', sdp, supports: ['load limit'] });
        await client.command({ command: 'delete', 'call-id': id, 'from-tag': 'f' });
      };
      const scenarios: Array<[string, (i: number) => Promise<void>, number, number]> = [
        ['ping, sequential', ping, ctx.quick ? 500 : 2000, 1],
        ['ping, 16 in flight', ping, ctx.quick ? 2000 : 8000, 16],
        ['offer+delete, sequential', call, ctx.quick ? 200 : 800, 1],
        ['offer+delete, 16 in flight', call, ctx.quick ? 800 : 3000, 16],
      ];
      let base = 0;
      for (const [name, op, total, conc] of scenarios) {
        const results: Trip[] = [];
        for (let r = 0; r < (ctx.quick ? 3 : 5); r++) {
          const offset = base;
          base += total;
          results.push(await roundTrips((i) => op(offset + i), total, conc));
        }
        rows.push({ suite: 'ng', name: `rtpengine ${name}`, unit: 'ops/s', value: median(results.map((x) => x.opsPerSec)), note: `${results.length} runs × ${total}` });
        rows.push({ suite: 'ng', name: `rtpengine ${name}, latency`, unit: 'ms', value: median(results.map((x) => x.p50)), p99: median(results.map((x) => x.p99)) });
        ctx.log(`${name}: ${results.map((x) => x.opsPerSec.toFixed(0)).join(', ')} ops/s`);
      }
    } finally {
      client.close();
      await rtpe.stop();
    }
    if (sink === 0.5) ctx.log('unreachable');
    return rows;
  },
};

export default suite;
