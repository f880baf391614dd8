// #13 defect 2 on the stand-in's EndpointSlice controller: the chart's own Service and rtpengine pod
// template (rendered with the default values, created through the schema-checked API) give slices
// that carry the `ng` and `control` ports on Kubernetes 1.29 — because the target ports are numbers.
// The same Service with named target ports (the old chart) gets no ports on 1.29 (the native
// sidecar's names are not resolved before 1.32) and does on 1.32.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderChart } from '../chart/render.js';
import { startKubeApiServer } from '../support/kube-apiserver.js';
import { waitFor } from '../support/wait.js';
import { DiscoveryV1Api, type V1EndpointSlice } from '../../src/kube/k8s.js';

const NS = 'voice';
const chart = renderChart({}, { name: 'rtpe', namespace: NS });
const service = chart.objects.find((o) => o.kind === 'Service' && o.metadata.labels?.['app.kubernetes.io/component'] === 'rtpengine');
const deployment = chart.objects.find((o) => o.kind === 'Deployment');

async function slicesOn(version: string, svc: any): Promise<V1EndpointSlice[]> {
  const api = await startKubeApiServer({ serverVersion: version });
  try {
    api.store.create('services', { ...svc, metadata: { ...svc.metadata, namespace: NS } });
    const tpl = deployment.spec.template;
    api.store.create('pods', { metadata: { name: 'rtpe-0', namespace: NS, labels: tpl.metadata.labels }, spec: { ...tpl.spec, nodeName: 'node-a' }, status: { phase: 'Running', podIP: '10.200.0.7', podIPs: [{ ip: '10.200.0.7' }], conditions: [{ type: 'Ready', status: 'True' }] } });
    const disc = api.kubeconfig().makeApiClient(DiscoveryV1Api);
    let got: V1EndpointSlice[] = [];
    await waitFor('the controller\'s slice with the pod', async () => (got = (await disc.listNamespacedEndpointSlice({ namespace: NS, labelSelector: `kubernetes.io/service-name=${svc.metadata.name}` })).items).some((s) => s.endpoints?.length));
    return got;
  } finally { await api.close(); }
}
const ports = (s: V1EndpointSlice[]) => s.flatMap((x) => (x.ports ?? []).map((p) => `${p.name}/${p.protocol}:${p.port}`)).sort();

test('chart Service (numeric target ports) + rtpengine pod: slices carry ng and control on 1.29', async () => {
  assert.ok(service && deployment, 'chart renders the rtpengine Service and Deployment');
  const want = service.spec.ports.map((p: any) => `${p.name}/${p.protocol}:${p.targetPort}`).sort();
  assert.deepEqual(ports(await slicesOn('1.29', service)), want);
});

test('the same Service with named target ports (the old chart): no ports on 1.29, resolved on 1.32', async () => {
  const sidecar = (deployment.spec.template.spec.initContainers ?? []).find((c: any) => c.restartPolicy === 'Always' && c.ports?.length);
  assert.ok(sidecar, 'the sidecar is a native sidecar declaring its ports');
  const named = { ...service, spec: { ...service.spec, ports: service.spec.ports.map((p: any) => ({ ...p, targetPort: sidecar.ports.find((c: any) => c.containerPort === p.targetPort)!.name })) } };
  assert.deepEqual(ports(await slicesOn('1.29', named)), []);
  assert.deepEqual(ports(await slicesOn('1.32', named)), service.spec.ports.map((p: any) => `${p.name}/${p.protocol}:${p.targetPort}`).sort());
});
