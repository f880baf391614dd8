// @kubernetes/client-node 2.x loads undici 8 (built for Node ≥ 22.19), which uses newer Node APIs.
// On Node 20 fill exactly those, harmlessly: kube-apiserver never sends zstd, markAsUncloneable
// only blocks structuredClone, Promise.withResolvers is the standard ES2024 helper.
import { createRequire } from 'node:module';
import { KubeError } from '../errors.js';

const req = createRequire(import.meta.url);
const zlib = req('node:zlib') as Record<string, unknown>;
if (typeof zlib.createZstdDecompress !== 'function') {
  zlib.createZstdDecompress = () => {
    throw new KubeError('KUBE_API', { verb: 'decode', resource: 'response body', status: '-', reason: 'zstd content-encoding needs Node >= 22.15' });
  };
}
const wt = req('node:worker_threads') as Record<string, unknown>;
if (typeof wt.markAsUncloneable !== 'function') wt.markAsUncloneable = () => undefined;
const P = Promise as unknown as { withResolvers?: () => unknown };
if (typeof P.withResolvers !== 'function') {
  P.withResolvers = () => {
    let resolve!: (v: unknown) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
    return { promise, resolve, reject };
  };
}
