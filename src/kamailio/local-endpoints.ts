// The EndpointSource of `rtpengine-k8s local`: the local sidecars as the EndpointSlices Kubernetes
// would publish for them (one slice per pod: its ng and control ports, ready = its sidecar says
// serving, terminating = its deletion has begun), so kamailio-sync runs the same code as in a cluster.
import type { EndpointSlice, EndpointSource } from './endpoints.js';
import { systemClock, type Clock, type Timer } from '../clock.js';

/** What the local supervisor knows of one pod. */
export interface LocalEndpoint {
  name: string;
  namespace: string;
  ip: string;
  ngPort: number;
  controlPort: number;
  /** The readiness probe's verdict (the sidecar reports `serving`). */
  ready: boolean;
  /** The pod's deletion has begun (preStop running or done, SIGTERM sent). */
  terminating: boolean;
}

/** One EndpointSlice per pod, as the EndpointSlice controller writes them for a headless Service. */
export function slicesOf(service: string, eps: readonly LocalEndpoint[], portName = 'ng', controlPortName = 'control'): EndpointSlice[] {
  return eps.map((e) => ({
    metadata: { name: `${service}-${e.name}`, namespace: e.namespace, labels: { 'kubernetes.io/service-name': service } },
    addressType: 'IPv4',
    endpoints: [{
      addresses: [e.ip],
      // As Kubernetes sets them: a terminating pod is not ready; serving follows the probe.
      conditions: { ready: e.ready && !e.terminating, serving: e.ready, terminating: e.terminating },
      targetRef: { kind: 'Pod', name: e.name, namespace: e.namespace },
    }],
    ports: [{ name: portName, port: e.ngPort, protocol: 'UDP' }, { name: controlPortName, port: e.controlPort, protocol: 'TCP' }],
  }));
}

/**
 * Watches `list()` (polled every `pollMs`) and reports a snapshot whenever the slices change, as
 * the Kubernetes informer does; `list` failures go to onError and the last snapshot stands.
 */
export function localEndpointSource(service: string, list: () => readonly LocalEndpoint[], pollMs = 250, clock: Pick<Clock, 'setTimeout'> = systemClock): EndpointSource {
  let timer: Timer | undefined;
  let stopped = false;
  let last = '';
  return {
    start(h) {
      const tick = () => {
        try {
          const slices = slicesOf(service, list());
          const key = JSON.stringify(slices);
          if (key !== last) { last = key; h.onSnapshot(slices); }
        } catch (e) {
          h.onError(e);
        }
      };
      const loop = () => { tick(); if (!stopped) timer = clock.setTimeout(loop, pollMs); };
      loop();
    },
    async stop() { stopped = true; timer?.cancel(); timer = undefined; },
  };
}
