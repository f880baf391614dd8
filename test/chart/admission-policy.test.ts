// The optional ValidatingAdmissionPolicy's CEL, evaluated by a CEL implementation
// (@marcbachmann/cel-js) on admission requests shaped as the API server builds them: the sidecar
// may change only its own pod's deletion-cost annotation; other users are not matched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluate } from '@marcbachmann/cel-js';
import { renderChart } from './render.js';
import { DELETION_COST_ANNOTATION } from '../../src/sidecar/deletion-cost.js';

const r = renderChart({ sidecar: { admissionPolicy: { enabled: true } } });
const policy = r.objects.find((o) => o.kind === 'ValidatingAdmissionPolicy');
const pod = r.objects.find((o) => o.kind === 'Deployment');
const sidecarUser = `system:serviceaccount:voice:${pod.spec.template.spec.serviceAccountName}`;

/** 'not-matched', 'allowed', or the message of the first failing validation (as the server runs them). */
function admit(req: { user: string; podNameExtra?: string[]; oldObject: any; object: any }): string {
  const request = { operation: 'UPDATE', userInfo: { username: req.user, ...(req.podNameExtra ? { extra: { 'authentication.kubernetes.io/pod-name': req.podNameExtra } } : {}) } };
  const ctx: Record<string, unknown> = { request, object: req.object, oldObject: req.oldObject };
  for (const c of policy.spec.matchConditions) if (evaluate(c.expression, ctx) !== true) return 'not-matched';
  const variables: Record<string, unknown> = {};
  for (const v of policy.spec.variables) variables[v.name] = evaluate(v.expression, { ...ctx, variables });
  for (const v of policy.spec.validations) if (evaluate(v.expression, { ...ctx, variables }) !== true) return v.message;
  return 'allowed';
}

const base = () => ({
  metadata: { name: 'rtpe-1', namespace: 'voice', labels: { 'app.kubernetes.io/component': 'rtpengine' }, annotations: { team: 'voice', [DELETION_COST_ANNOTATION]: '4' }, finalizers: [], ownerReferences: [{ kind: 'ReplicaSet', name: 'rs' }] },
  spec: { containers: [{ name: 'rtpengine', image: 'rtpengine-k8s:0.1.0-exec' }] },
});
const changed = (f: (o: any) => void) => { const o = base(); f(o); return o; };

test('admission policy: a sidecar may set its own pod\'s deletion cost and nothing else', () => {
  const own = { user: sidecarUser, podNameExtra: ['rtpe-1'], oldObject: base() };
  assert.equal(admit({ ...own, object: changed((o) => { o.metadata.annotations[DELETION_COST_ANNOTATION] = '-1000'; }) }), 'allowed');
  assert.equal(admit({ ...own, object: changed((o) => { delete o.metadata.annotations[DELETION_COST_ANNOTATION]; }) }), 'allowed');
  assert.equal(admit({ ...own, oldObject: changed((o) => { delete o.metadata.annotations; }), object: changed((o) => { o.metadata.annotations = { [DELETION_COST_ANNOTATION]: '0' }; }) }), 'allowed', 'first write on a pod without annotations');

  const denied = (why: string, req: Parameters<typeof admit>[0], msg: RegExp) => assert.match(admit(req), msg, why);
  denied('another pod', { user: sidecarUser, podNameExtra: ['rtpe-2'], oldObject: base(), object: changed((o) => { o.metadata.annotations[DELETION_COST_ANNOTATION] = '0'; }) }, /only its own pod/);
  denied('a token without the pod binding', { user: sidecarUser, oldObject: base(), object: changed((o) => { o.metadata.annotations[DELETION_COST_ANNOTATION] = '0'; }) }, /only its own pod/);
  denied('another annotation', { ...own, object: changed((o) => { o.metadata.annotations.team = 'other'; }) }, /only the controller\.kubernetes\.io\/pod-deletion-cost annotation/);
  denied('an added annotation', { ...own, object: changed((o) => { o.metadata.annotations.extra = 'x'; }) }, /pod-deletion-cost annotation/);
  denied('a removed annotation', { ...own, object: changed((o) => { delete o.metadata.annotations.team; }) }, /pod-deletion-cost annotation/);
  denied('a label (would steer Service selection)', { ...own, object: changed((o) => { o.metadata.labels['app.kubernetes.io/component'] = 'x'; }) }, /spec, labels/);
  denied('the image', { ...own, object: changed((o) => { o.spec.containers[0].image = 'evil'; }) }, /spec, labels/);
  denied('owner references', { ...own, object: changed((o) => { o.metadata.ownerReferences = []; }) }, /owner references/);

  // Anyone else (a controller, an operator) is not matched at all.
  assert.equal(admit({ user: 'system:serviceaccount:kube-system:replicaset-controller', oldObject: base(), object: changed((o) => { o.metadata.labels = {}; }) }), 'not-matched');
  assert.equal(admit({ user: 'system:serviceaccount:other:rtpe-rtpengine-k8s-sidecar', podNameExtra: ['rtpe-1'], oldObject: base(), object: changed((o) => { o.metadata.labels = {}; }) }), 'not-matched', 'the same account name in another namespace');
});
