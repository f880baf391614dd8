// Every object the chart renders, for every value set the chart tests use (test/chart/variants.ts),
// validated as the API server judges its schema (test/support/k8s-schema.ts: the published
// Kubernetes OpenAPI schemas, KEDA and prometheus-operator CRD models, the published
// NetworkAttachmentDefinition CRD). Unknown fields count: helm refuses them (client-side schema
// validation) before the server could drop them. A known-bad value set must fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderChart } from './render.js';
import { variants } from './variants.js';
import { validateObject, type SchemaIssue } from '../support/k8s-schema.js';
import { Engine, TemplateError } from './gotpl.js';

async function issuesOf(objects: any[]): Promise<string[]> {
  const out: string[] = [];
  for (const o of objects) {
    const issues: SchemaIssue[] = await validateObject(o);
    for (const i of issues) out.push(`${o.kind}/${o.metadata?.name}: [${i.class}] ${i.message}`);
  }
  return out;
}

test('every rendered object of every value set is valid against its published schema', async () => {
  const kinds = new Set<string>();
  for (const [name, values] of Object.entries(variants)) {
    const { objects } = renderChart(values);
    for (const o of objects) kinds.add(`${o.apiVersion} ${o.kind}`);
    assert.deepEqual(await issuesOf(objects), [], name);
  }
  // The check covered every kind the chart can emit (a kind without a schema is an issue above).
  for (const k of ['apps/v1 Deployment', 'apps/v1 DaemonSet', 'v1 Service', 'v1 ServiceAccount', 'rbac.authorization.k8s.io/v1 ClusterRole',
    'autoscaling/v2 HorizontalPodAutoscaler', 'policy/v1 PodDisruptionBudget', 'keda.sh/v1alpha1 ScaledObject', 'monitoring.coreos.com/v1 ServiceMonitor',
    'k8s.cni.cncf.io/v1 NetworkAttachmentDefinition', 'admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy', 'batch/v1 Job']) {
    assert.ok(kinds.has(k), `no value set renders ${k}`);
  }
});

test('a known-bad value set fails the validation (the check can fail)', async () => {
  // Each passes values.schema.json (which types only our own keys) but renders an object the API
  // server refuses: helm would fail at install, so the check must fail here.
  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ['env value as a number', { sidecar: { extraEnv: [{ name: 'RTPE_K8S_LOG_PRETTY', value: 5 }] } }, /Deployment\/.*env\[\d+\]\.value.*string/],
    ['a typo in an affinity', { rtpengine: { affinity: { nodeAfinity: {} } } }, /unknown field "spec\.template\.spec\.affinity\.nodeAfinity"/],
    ['topology spread without its required fields', { rtpengine: { topologySpreadConstraints: [{ maxSkew: 1 }] } }, /topologyKey: Required value/],
    ['a toleration with a list as its key', { allocator: { tolerations: [{ key: ['media'] }] } }, /DaemonSet\/.*tolerations\[0\]\.key/],
  ];
  for (const [why, values, want] of bad) {
    const issues = await issuesOf(renderChart(values).objects);
    assert.ok(issues.some((i) => want.test(i)), `${why}: ${JSON.stringify(issues)}`);
  }
});

test('the renderer refuses what it does not implement instead of guessing (sprig functions, actions)', () => {
  const engine = new Engine();
  engine.add('t.yaml', 'a: {{ b64enc "x" }}');
  assert.throws(() => engine.render('t.yaml', { Values: {}, Release: {}, Chart: {} } as any), (e: unknown) => e instanceof TemplateError && /unsupported function 'b64enc'/.test(e.message));
  assert.throws(() => engine.add('u.yaml', '{{ block "x" . }}y{{ end }}'), (e: unknown) => e instanceof TemplateError && /unsupported action 'block'/.test(e.message));
});
