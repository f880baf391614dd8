// The one Prometheus registry per process. Components receive it and register their own metrics
// on it; names follow Prometheus conventions under the `rtpengine_k8s_` prefix.
import { Registry, collectDefaultMetrics } from 'prom-client';

export { Registry };
export const METRIC_PREFIX = 'rtpengine_k8s_';

export function createRegistry(opts: { defaultMetrics?: boolean; labels?: Record<string, string> } = {}): Registry {
  const registry = new Registry();
  if (opts.labels) registry.setDefaultLabels(opts.labels);
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
  return registry;
}
