// The chart's rendered headless Service and rtpengine pod template, fed to the API stand-in's
// EndpointSlice controller at a given server version: on 1.29–1.31 a Service that targets the
// native sidecar's ports by name gets slices without them (kubernetes#127958, fixed for slices
// by #128850 in 1.32); the chart's numeric target ports give the ng and control ports everywhere.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DiscoveryV1Api, type DiscoveryV1EndpointPort } from '../../src/kube/k8s.js';
import { startKubeApiServer } from '../support/kube-apiserver.js';
import { waitFor } from '../support/wait.js';
import { renderChart } from './render.js';

/** The ports of the Service's slices once the controller has written them for one ready pod. */
async function slicePorts(serverVersion: string, mutate: (svc: any) => void = () => {}): Promise<DiscoveryV1EndpointPort[]> {
  const r = renderChart({}, { name: 'rtpe', namespace: 'voice' });
  const svc = structuredClone(r.objects.find((o) => o.kind === 'Service' && o.spec.selector?.['app.kubernetes.io/component'] === 'rtpengine'));
  mutate(svc);
  const tpl = r.objects.find((o) => o.kind === 'Deployment').spec.template;
  const api = await startKubeApiServer({ serverVersion });
  try {
    api.store.create('services', svc);
    api.store.addPod({ namespace: 'voice', name: 'rtpe-0', nodeName: 'n1', labels: tpl.metadata.labels, containers: tpl.spec.containers, initContainers: tpl.spec.initContainers, podIP: '10.9.0.7', ready: true });
    const disc = api.kubeconfig().makeApiClient(DiscoveryV1Api);
    let ports: DiscoveryV1EndpointPort[] = [];
    await waitFor('the controller wrote a slice with the pod', async () => {
      const items = (await disc.listNamespacedEndpointSlice({ namespace: 'voice', labelSelector: `kubernetes.io/service-name=${svc.metadata.name}` })).items;
      ports = items[0]?.ports ?? [];
      return items.length === 1 && items[0]!.endpoints?.[0]?.addresses?.[0] === '10.9.0.7';
    });
    return ports.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol }));
  } finally {
    await api.close();
  }
}

const byName = (ports: DiscoveryV1EndpointPort[]) => Object.fromEntries(ports.map((p) => [p.name, `${p.port}/${p.protocol}`]));

// Every minor the chart supports that the stand-in's controller models (1.29–1.31: named ports of
// a native sidecar unresolved; 1.32+: resolved). One test per version (review 14/16 finding 2: the
// former test/e2e/kube-chart-endpoints.test.ts covered 1.29 only and is folded in here).
const VERSIONS = ['1.29', '1.30', '1.31', '1.32'];
const fixedIn = (v: string) => Number(v.split('.')[1]) >= 32;

for (const version of VERSIONS) {
  test(`${version}: EndpointSlices of the chart's Service (numeric target ports) carry the ng and control ports`, async () => {
    assert.deepEqual(byName(await slicePorts(version)), { ng: '22222/UDP', control: '9450/TCP' });
  });

  test(`${version}: the controller stand-in tells the difference — the same Service with named target ports (before ADR 0056) ${fixedIn(version) ? 'is resolved' : 'gets no ports'}`, async () => {
    const named = (svc: any) => { for (const p of svc.spec.ports) p.targetPort = p.name; };
    assert.deepEqual(byName(await slicePorts(version, named)), fixedIn(version) ? { ng: '22222/UDP', control: '9450/TCP' } : {}, fixedIn(version) ? 'resolved' : 'no ng port, so kamailio-sync would see no rtpengine');
  });
}
