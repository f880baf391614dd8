// Chart checks without a helm binary: values ↔ templates ↔ schema, rendered YAML for several value
// sets (test/chart/gotpl.ts evaluates the template subset we use), RBAC equal to docs/rbac-rules.yaml,
// and every env var the chart sets accepted by the option set of the command that container runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startRtpengine } from '../support/rtpengine.js';
import { requires } from '../support/require.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isIP } from 'node:net';
import Ajv from 'ajv';
import * as yaml from 'js-yaml';
import { chartDir, defaultValues, loadYaml, mergeValues, renderChart, templateFiles } from './render.js';
import { TemplateError } from './gotpl.js';
import { variants } from './variants.js';
import { commands } from '../../src/commands.js';
import { commonOptions, envName, type OptionSet } from '../../src/config.js';
import { startControlServer } from '../../src/sidecar/http.js';
import { startNgProxy } from '../../src/sidecar/proxy.js';
import { proxyConfigWith } from '../../src/sidecar/proxy-options.js';
import { createRegistry } from '../../src/metrics.js';
import { DELETION_COST_ANNOTATION } from '../../src/sidecar/deletion-cost.js';
import { silentLogger } from '../../src/log.js';
import { freePort } from '../support/ports.js';

const repo = join(chartDir, '..', '..');

const renders = Object.fromEntries(Object.entries(variants).map(([k, v]) => [k, renderChart(v)]));

function newAjv() {
  const A: any = (Ajv as any).default ?? Ajv;
  const ajv = new A({ allErrors: true, strict: true, allowUnionTypes: true });
  ajv.addFormat('ipv4', (s: string) => isIP(s) === 4);
  ajv.addFormat('ipv6', (s: string) => isIP(s) === 6);
  return ajv;
}
const validate = newAjv().compile(JSON.parse(readFileSync(join(chartDir, 'values.schema.json'), 'utf8')));

test('values.yaml validates against values.schema.json', () => {
  assert.equal(validate(defaultValues()), true, JSON.stringify(validate.errors, null, 2));
  for (const [name, v] of Object.entries(variants)) {
    assert.equal(validate(mergeValues(defaultValues(), v)), true, `${name}: ${JSON.stringify(validate.errors)}`);
  }
});

test('the schema accepts helm\'s `global` values: the chart can be a subchart', () => {
  // helm gives every subchart the parent's `global` map and validates it with the subchart's schema.
  for (const global of [{}, { imageRegistry: 'registry.example', imagePullSecrets: [{ name: 'regcred' }], storageClass: 'fast' }]) {
    assert.equal(validate(mergeValues(defaultValues(), { global })), true, JSON.stringify(validate.errors));
  }
  assert.equal(validate(mergeValues(defaultValues(), { global: 'not-a-map' })), false);
});

test('the schema rejects what the programs would reject', () => {
  const bad: Array<[string, Record<string, unknown>]> = [
    ['table out of 0-63', { allocator: { tableRange: '0-64' } }],
    ['unknown mode', { rtpengine: { mode: 'sidecarless' } }],
    ['unknown key', { rtpengine: { replica: 3 } }],
    ['bad pool range', { pools: [{ name: 'media', cidr: '192.0.2.0' }] }],
    ['stabilization > 3600', { autoscaling: { hpa: { scaleDownStabilizationSeconds: 7200 } } }],
    ['margin below 10 s', { sidecar: { drainMarginSeconds: 0 } }],
    ['unknown preStop form', { rtpengine: { preStop: 'sleep' } }],
  ];
  for (const [why, v] of bad) assert.equal(validate(mergeValues(defaultValues(), v)), false, why);
});

/** Leaf paths of values.yaml (maps descended; lists and empty maps are leaves). */
function leaves(v: unknown, path = ''): string[] {
  if (!v || typeof v !== 'object' || Array.isArray(v) || Object.keys(v).length === 0) return [path];
  return Object.entries(v).flatMap(([k, x]) => leaves(x, path ? `${path}.${k}` : k));
}
function has(v: any, path: string): boolean {
  let cur = v;
  for (const p of path.split('.')) {
    if (p.endsWith('[]')) { cur = cur?.[p.slice(0, -2)]?.[0]; continue; }
    if (!cur || typeof cur !== 'object' || !(p in cur)) return false;
    cur = cur[p];
  }
  return true;
}

test('every .Values path in the templates exists in values.yaml', () => {
  const values = defaultValues();
  const missing: string[] = [];
  for (const f of templateFiles()) {
    const src = readFileSync(join(chartDir, 'templates', f), 'utf8');
    for (const m of src.matchAll(/\.Values((?:\.[A-Za-z_][\w]*)+)/g)) {
      const path = m[1]!.slice(1);
      if (!has(values, path)) missing.push(`${f}: .Values.${path}`);
    }
  }
  // Paths reached through variables ($hpa.minReplicas) show up only while rendering.
  for (const [name, r] of Object.entries(renders)) {
    for (const p of r.read) {
      const path = p.replace(/\[\]/g, '[]');
      if (!has(values, path) && !has(mergeValues(values, variants[name]), path)) missing.push(`${name}: ${p}`);
    }
  }
  assert.deepEqual(missing, []);
});

test('every value in values.yaml is read by some template', () => {
  const read = new Set<string>();
  for (const r of Object.values(renders)) for (const p of r.read) read.add(p);
  const unused = leaves(defaultValues()).filter((l) => !read.has(l) && ![...read].some((r) => r.startsWith(`${l}.`) || r.startsWith(`${l}[]`)));
  assert.deepEqual(unused, []);
});

test('every variant renders to Kubernetes objects', () => {
  for (const [name, r] of Object.entries(renders)) {
    assert.ok(r.objects.length >= 3, name);
    for (const o of r.objects) {
      assert.ok(o.apiVersion && o.kind && o.metadata?.name, `${name}: ${JSON.stringify(o).slice(0, 120)}`);
      assert.ok(o.metadata.name.length <= 63, `${name}: name too long ${o.metadata.name}`);
    }
  }
  assert.throws(() => renderChart({ autoscaling: { keda: { enabled: true } } }), (e: unknown) => e instanceof TemplateError && /exclusive/.test(e.message));
  assert.throws(() => renderChart({ multus: { enabled: true, type: 'host-device' } }), /multus.device is required/);
  assert.throws(() => renderChart({ sidecar: { drainMarginSeconds: 20 } }), /drainMarginSeconds must exceed/);
  // The linger after a drain counts too: 30 s delete-delay + 25 s linger + 10 s > 60 s margin.
  assert.throws(() => renderChart({ sidecar: { drainLingerSeconds: 25 } }), /drainMarginSeconds must exceed/);
  renderChart({ sidecar: { drainLingerSeconds: 25, drainMarginSeconds: 65 } });
});

const kind = (r: { objects: any[] }, k: string) => r.objects.filter((o) => o.kind === k);
const deployment = (r: { objects: any[] }) => kind(r, 'Deployment')[0]!.spec.template.spec;

test('rtpengine pod: native sidecar, preStop drain, grace = deadline + margin, NET_ADMIN only', () => {
  const v = defaultValues() as any;
  const pod = deployment(renders.defaults!);
  const sidecar = pod.initContainers.find((c: any) => c.name === 'sidecar');
  assert.equal(sidecar.restartPolicy, 'Always');
  assert.ok(sidecar.startupProbe, 'rtpengine must start only after the sidecar rendered the config');
  const rtpengine = pod.containers.find((c: any) => c.name === 'rtpengine');
  const drainCmd = ['rtpengine-k8s', 'drain', '--wait', `--url=http://127.0.0.1:${v.sidecar.controlPort}`];
  assert.deepEqual(rtpengine.lifecycle.preStop.exec.command, drainCmd);
  assert.ok(sidecar.env.some((e: any) => e.name === 'RTPE_K8S_CONTROL_LISTEN' && e.value.endsWith(`:${v.sidecar.controlPort}`)), 'drain --url and the control port agree');
  assert.equal(pod.terminationGracePeriodSeconds, v.sidecar.drainDeadlineSeconds + v.sidecar.drainMarginSeconds);
  assert.equal(renderChart({ sidecar: { drainDeadlineSeconds: 14400 } }).objects.find((o) => o.kind === 'Deployment').spec.template.spec.terminationGracePeriodSeconds, 14400 + v.sidecar.drainMarginSeconds);

  const plain = deployment(renders.plainSidecar!);
  assert.equal(plain.initContainers, undefined);
  for (const c of plain.containers) assert.deepEqual(c.lifecycle.preStop.exec.command, drainCmd, c.name);
  const exec = deployment(renders.exec!);
  assert.deepEqual(exec.containers.map((c: any) => c.name), ['sidecar']);
  assert.match(exec.containers[0].image, /-exec$/);

  for (const [name, r] of Object.entries(renders)) {
    const p = deployment(r);
    for (const c of [...(p.initContainers ?? []), ...p.containers]) {
      assert.notEqual(c.securityContext.privileged, true, `${name}/${c.name}`);
      const add = name === 'full' && c.name === 'sidecar' ? ['NET_ADMIN', 'NET_RAW'] : ['NET_ADMIN'];
      assert.deepEqual(c.securityContext.capabilities, c.name === 'redis' ? { drop: ['ALL'] } : { drop: ['ALL'], add }, `${name}/${c.name}`);
    }
    assert.equal(p.hostNetwork, undefined, name);
  }
});

test('rtpengine preStop: exec only where the binary is, custom images need an explicit form', () => {
  const v = defaultValues() as any;
  const drainCmd = ['rtpengine-k8s', 'drain', '--wait', `--url=http://127.0.0.1:${v.sidecar.controlPort}`];
  const rtpengineOf = (r: { objects: any[] }) => deployment(r).containers.find((c: any) => c.name === 'rtpengine');
  // A custom rtpengine image with the default hook gets the image-independent httpGet form, never
  // an exec of a binary that is not there.
  const custom = rtpengineOf(renderChart({ rtpengine: { image: { repository: 'example/rtpengine' } } })).lifecycle.preStop;
  assert.equal(custom.exec, undefined);
  assert.equal(custom.httpGet?.path, '/drain/wait');
  // The operator vouches for the binary (an image built FROM ours): exec it is.
  assert.deepEqual(rtpengineOf(renders.full!).lifecycle.preStop, { exec: { command: ['rtpengine-k8s', 'drain', '--wait', `--url=http://127.0.0.1:${v.sidecar.controlPort}`] } });
  assert.deepEqual(rtpengineOf(renderChart({ rtpengine: { preStop: 'exec' } })).lifecycle.preStop.exec.command, drainCmd);
  // exec mode has no rtpengine container: the rtpengine image and its hook play no part.
  assert.deepEqual(deployment(renderChart({ rtpengine: { mode: 'exec', image: { repository: 'example/rtpengine' } } })).containers.map((c: any) => c.name), ['sidecar']);
  // A plain (non-native) sidecar runs our image: it keeps the exec drain whatever rtpengine runs.
  const plain = deployment(renderChart({ rtpengine: { nativeSidecar: false, preStop: 'exec', image: { repository: 'example/rtpengine' } } }));
  assert.deepEqual(plain.containers.find((c: any) => c.name === 'sidecar').lifecycle.preStop.exec.command, drainCmd);
});

test('httpGet preStop: refused exactly while the real control server lacks GET /drain/wait', { skip: requires('rtpengine') }, async () => {
  // Ask a real sidecar control server in front of a real, empty rtpengine (no delete-delay).
  const rtpe = await startRtpengine({ ports: 10 });
  const registry = createRegistry({ defaultMetrics: false });
  const proxy = await startNgProxy(proxyConfigWith({ ngListen: [`127.0.0.1:${await freePort()}`], ngUpstream: `127.0.0.1:${rtpe.ngPort}`, ngHealthIntervalMs: 50, deleteDelaySeconds: 0, ngDrainPollMs: 50 }), { log: silentLogger, registry });
  const http = await startControlServer({ host: '127.0.0.1', port: 0, registry, target: proxy, log: silentLogger });
  let status: number;
  try {
    status = (await fetch(`${http.url}/drain/wait`, { signal: AbortSignal.timeout(60_000) })).status;
  } finally {
    await http.close();
    await proxy.close();
    await rtpe.stop();
  }
  const served = status !== 404 && status !== 405;
  if (!served) {
    for (const values of [{ rtpengine: { preStop: 'httpGet' } }, { rtpengine: { preStop: 'httpGet', image: { repository: 'example/rtpengine' } } }]) {
      assert.throws(() => renderChart(values), (e: unknown) => e instanceof TemplateError && /GET \/drain\/wait/.test(e.message), JSON.stringify(values));
    }
    return;
  }
  // The endpoint exists: the chart must offer it (flip rtpengine-k8s.sidecarServesDrainWait in
  // _helpers.tpl) and an empty pod's drain must answer 200 once drained.
  assert.equal(status, 200, 'GET /drain/wait on an empty sidecar answers 200 once drained');
  const pre = deployment(renderChart({ rtpengine: { preStop: 'httpGet', image: { repository: 'example/rtpengine' } } })).containers.find((c: any) => c.name === 'rtpengine').lifecycle.preStop;
  assert.deepEqual(pre, { httpGet: { path: '/drain/wait', port: (defaultValues() as any).sidecar.controlPort } });
  assert.equal(deployment(renderChart({ rtpengine: { image: { repository: 'example/rtpengine' } } })).containers.find((c: any) => c.name === 'rtpengine').lifecycle.preStop.httpGet?.path, '/drain/wait', 'auto picks httpGet for a custom image');
});

test('call persistence (off by default): a Redis native sidecar before the sidecar, loopback only, nothing on disk, probed; the sidecar points at its db 0', () => {
  for (const name of ['defaults', 'exec']) {
    const p = deployment(renders[name]!);
    assert.ok(![...(p.initContainers ?? []), ...p.containers].some((c: any) => c.name === 'redis'), `${name}: no Redis unless asked`);
    const sc = [...(p.initContainers ?? []), ...p.containers].find((c: any) => c.name === 'sidecar');
    assert.ok(!sc.env.some((e: any) => e.name === 'RTPE_K8S_PERSISTENCE_REDIS'), name);
  }
  for (const [name, port, image] of [['persistence', 6379, 'docker.io/library/redis:7.4-alpine'], ['persistenceExec', 6380, 'example/redis:7']] as const) {
    const p = deployment(renders[name]!);
    const inits = p.initContainers.map((c: any) => c.name);
    assert.equal(inits[0], 'redis', `${name}: Redis starts first (${inits.join(',')})`);
    const redis = p.initContainers[0];
    assert.equal(redis.restartPolicy, 'Always', 'a native sidecar: up before the sidecar, stopped after rtpengine');
    assert.equal(redis.image, image);
    assert.deepEqual(redis.command, ['redis-server', '--port', String(port), '--bind', '127.0.0.1', '--protected-mode', 'yes', '--save', '', '--appendonly', 'no', '--dir', '/tmp']);
    for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) assert.deepEqual(redis[probe].exec.command, ['redis-cli', '-p', String(port), 'ping'], `${name} ${probe}`);
    assert.ok(redis.resources.limits.memory, 'a memory limit');
    assert.equal(redis.volumeMounts, undefined, 'no volume: nothing kept beyond the pod');
    const sc = [...p.initContainers, ...p.containers].find((c: any) => c.name === 'sidecar');
    assert.deepEqual(sc.env.filter((e: any) => e.name === 'RTPE_K8S_PERSISTENCE_REDIS'), [{ name: 'RTPE_K8S_PERSISTENCE_REDIS', value: `redis://127.0.0.1:${port}/0` }]);
  }
  assert.deepEqual(deployment(renders.persistenceExec!).containers.map((c: any) => c.name), ['sidecar']);
  assert.throws(() => renderChart({ rtpengine: { nativeSidecar: false, persistence: { enabled: true } } }), (e: unknown) => e instanceof TemplateError && /native sidecars/.test(e.message));
});

test('sidecar probes and control port: named ports exist, readiness tolerates two misses', () => {
  const v = defaultValues() as any;
  for (const [name, r] of Object.entries(renders)) {
    const p = deployment(r);
    const sidecar = [...(p.initContainers ?? []), ...p.containers].find((c: any) => c.name === 'sidecar');
    const ports = new Map(sidecar.ports.map((x: any) => [x.name, x]));
    for (const probe of ['livenessProbe', 'readinessProbe']) assert.ok(ports.has(sidecar[probe].httpGet.port), `${name}: ${probe} port ${sidecar[probe].httpGet.port}`);
    const rp = sidecar.readinessProbe;
    // One missed probe must not make the pod not-Ready (first on scale-in, dropped by kamailio-sync).
    assert.ok(rp.failureThreshold >= 3, `${name}: readiness failureThreshold ${rp.failureThreshold}`);
    assert.ok(rp.periodSeconds * rp.failureThreshold <= 10, `${name}: a dead rtpengine still turns the pod not-Ready within ~10 s`);
    // GET /status on the pod IP for kamailio-sync; POST /drain stays loopback-only.
    const listen = sidecar.env.find((e: any) => e.name === 'RTPE_K8S_CONTROL_LISTEN').value;
    assert.match(listen, /^(0\.0\.0\.0|\[::\]):\d+$/, `${name}: control server on every pod address`);
    assert.equal((ports.get('control') as any).containerPort, Number(listen.replace(/^.*:/, '')), name);
    assert.equal(sidecar.env.some((e: any) => e.name === 'RTPE_K8S_CONTROL_REMOTE_DRAIN'), false, `${name}: POST /drain must stay loopback-only`);
    // The headless Service names the control port for kamailio-sync's EndpointSlice lookup.
    const svc = kind(r, 'Service').find((s: any) => s.spec.selector?.['app.kubernetes.io/component'] === 'rtpengine');
    const control = svc.spec.ports.find((x: any) => x.name === 'control');
    assert.ok(control, `${name}: headless Service has a port named control`);
    assert.equal(control.protocol, 'TCP');
    assert.equal(control.targetPort, (ports.get('control') as any).containerPort, `${name}: Service control → container port ${control.targetPort}`);
    for (const sm of kind(r, 'ServiceMonitor')) for (const ep of sm.spec.endpoints) {
      assert.ok(kind(r, 'Service').some((s: any) => s.spec.ports.some((x: any) => x.name === ep.port)), `${name}: ServiceMonitor port ${ep.port} exists on a Service`);
    }
  }
  assert.equal(v.sidecar.controlPort, 9450, 'the chart uses the sidecar\'s default --control-listen port');
});

test('Services target container ports by number: native-sidecar port names do not resolve before 1.32', () => {
  // kubernetes#127958: the EndpointSlice controller of 1.29–1.31 looks named target ports up in
  // regular containers only, so a name that exists only on the native sidecar (an init container)
  // yields slices without that port: kamailio-sync would see no rtpengine (docs/adr/0056).
  for (const [name, r] of Object.entries(renders)) {
    const workloads = r.objects.filter((o) => o.kind === 'Deployment' || o.kind === 'DaemonSet');
    for (const svc of kind(r, 'Service')) {
      const pods = workloads.filter((w) => Object.entries(svc.spec.selector).every(([k, v]) => w.spec.template.metadata.labels[k] === v));
      assert.equal(pods.length, 1, `${name}: Service ${svc.metadata.name} selects one workload`);
      const spec = pods[0].spec.template.spec;
      const containerPorts = [...(spec.initContainers ?? []), ...spec.containers].flatMap((c: any) => c.ports ?? []);
      for (const p of svc.spec.ports) {
        assert.equal(typeof p.targetPort, 'number', `${name}: ${svc.metadata.name} port ${p.name} targets '${p.targetPort}' by name`);
        assert.ok(containerPorts.some((c: any) => c.containerPort === p.targetPort && (c.protocol ?? 'TCP') === p.protocol), `${name}: ${svc.metadata.name} port ${p.name} → ${p.targetPort}/${p.protocol} is no container port`);
      }
    }
  }
});

test('rtpengine pod: a projected token for the allocator, mounted read-only in the sidecar only', () => {
  for (const [name, r] of Object.entries(renders)) {
    const pod = deployment(r);
    const vol = pod.volumes.find((v: any) => v.name === 'allocator-token');
    assert.deepEqual(vol?.projected, { sources: [{ serviceAccountToken: { audience: 'rtpengine-k8s-allocator', expirationSeconds: 600, path: 'token' } }] }, name);
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
      const m = (c.volumeMounts ?? []).filter((x: any) => x.name === 'allocator-token');
      if (c.name !== 'sidecar') { assert.deepEqual(m, [], `${name}/${c.name} must not see the allocator token`); continue; }
      assert.deepEqual(m, [{ name: 'allocator-token', mountPath: '/var/run/secrets/rtpengine-k8s/allocator-token', readOnly: true }], name);
    }
  }
});

test('IPv6 ndisc_notify: a pod sysctl when asked (the sidecar cannot write /proc/sys), none by default', () => {
  assert.equal(deployment(renders.defaults!).securityContext, undefined);
  assert.deepEqual(deployment(renders.full!).securityContext, { sysctls: [{ name: 'net.ipv6.conf.all.ndisc_notify', value: '1' }] });
});

test('optional admission policy: the sidecar account may change only its own pod\'s deletion cost', () => {
  for (const name of ['defaults', 'multus', 'noAllocator']) assert.equal(kind(renders[name]!, 'ValidatingAdmissionPolicy').length, 0, name);
  const r = renders.full!;
  const [policy] = kind(r, 'ValidatingAdmissionPolicy');
  const [binding] = kind(r, 'ValidatingAdmissionPolicyBinding');
  assert.ok(policy && binding);
  assert.equal(binding.spec.policyName, policy.metadata.name);
  assert.deepEqual(binding.spec.validationActions, ['Deny']);
  assert.deepEqual(binding.spec.matchResources.namespaceSelector.matchLabels, { 'kubernetes.io/metadata.name': releaseNs });
  // It applies to the account the rtpengine pods run as, and to nobody else.
  const sa = deployment(r).serviceAccountName;
  assert.deepEqual(policy.spec.matchConditions.map((c: any) => c.expression), [`request.userInfo.username == 'system:serviceaccount:${releaseNs}:${sa}'`]);
  assert.deepEqual(policy.spec.matchConstraints.resourceRules, [{ apiGroups: [''], apiVersions: ['v1'], operations: ['UPDATE'], resources: ['pods'] }]);
  assert.equal(policy.spec.failurePolicy, 'Fail');
  const exprs = policy.spec.validations.map((v: any) => v.expression).join('\n') + policy.spec.variables.map((v: any) => v.expression).join('\n');
  assert.match(exprs, /request\.userInfo\.extra\['authentication\.kubernetes\.io\/pod-name'\] == \[object\.metadata\.name\]/);
  assert.ok(exprs.includes(`'${DELETION_COST_ANNOTATION}'`), 'the annotation the sidecar writes');
  // Without the deletion cost the sidecar patches nothing and has no Role: no policy either.
  assert.equal(kind(renderChart({ sidecar: { admissionPolicy: { enabled: true }, deletionCost: { enabled: false } } }), 'ValidatingAdmissionPolicy').length, 0);
});

test('uninstall: a pre-delete hook Job runs ctl cleanup --yes with the allocator\'s store options (kubernetes store only)', () => {
  const storeEnv = ['RTPE_K8S_STORE', 'RTPE_K8S_POOLS', 'RTPE_K8S_IP_MODE', 'RTPE_K8S_NETWORK_STATUS_INTERFACE', 'RTPE_K8S_LEASE_NAMESPACE', 'RTPE_K8S_POOL_NAMESPACE', 'RTPE_K8S_KUBECONFIG', 'RTPE_K8S_NETWORK_NAME'];
  for (const name of ['defaults', 'multus', 'full']) {
    const r = renders[name]!;
    const jobs = kind(r, 'Job');
    assert.equal(jobs.length, 1, name);
    const job = jobs[0];
    assert.equal(job.metadata.annotations['helm.sh/hook'], 'pre-delete', name);
    assert.match(job.metadata.annotations['helm.sh/hook-delete-policy'], /before-hook-creation/);
    const spec = job.spec.template.spec;
    assert.equal(spec.restartPolicy, 'Never');
    const ds = kind(r, 'DaemonSet')[0]!.spec.template.spec;
    assert.equal(spec.serviceAccountName, ds.serviceAccountName, `${name}: the allocator's account and RBAC`);
    const [c] = spec.containers;
    assert.deepEqual(c.args, ['ctl', 'cleanup', '--yes']);
    assert.equal(c.image, ds.containers[0].image);
    const pick = (env: any[]) => env.filter((e) => storeEnv.includes(e.name));
    assert.deepEqual(pick(c.env), pick(ds.containers[0].env), `${name}: same store options as the allocator`);
    assert.ok(pick(c.env).some((e: any) => e.name === 'RTPE_K8S_STORE' && e.value === 'kubernetes'));
    assert.equal(c.securityContext.runAsNonRoot, true, 'API calls only: no root');
    assert.match(r.files['NOTES.txt']!, /ctl cleanup --yes/);
  }
  for (const name of ['fileStore', 'noAllocator']) assert.equal(kind(renders[name]!, 'Job').length, 0, name);
  const off = renderChart({ allocator: { cleanupOnUninstall: false } });
  assert.equal(kind(off, 'Job').length, 0);
  assert.match(off.files['NOTES.txt']!, /before `helm uninstall`, free them with\n\s+kubectl exec .* ctl cleanup --yes/);
});

test('allocator caller authentication: the sidecar sends its projected token; the operator socket has a directory no pod mounts', () => {
  for (const [name, r] of Object.entries(renders)) {
    const pod = deployment(r);
    const sidecar = [...(pod.initContainers ?? []), ...pod.containers].find((c: any) => c.name === 'sidecar');
    const file = sidecar.env.find((e: any) => e.name === 'RTPE_K8S_ALLOCATOR_TOKEN_FILE')?.value;
    const mount = sidecar.volumeMounts.find((m: any) => m.name === 'allocator-token');
    const source = pod.volumes.find((v: any) => v.name === 'allocator-token').projected.sources[0].serviceAccountToken;
    assert.equal(file, `${mount.mountPath}/${source.path}`, `${name}: the token file is the projected one`);
    const ds = kind(r, 'DaemonSet')[0]?.spec.template.spec;
    if (!ds) continue;
    const c = ds.containers[0];
    const store = c.env.find((e: any) => e.name === 'RTPE_K8S_STORE').value;
    if (store !== 'kubernetes') continue;
    const op = c.env.find((e: any) => e.name === 'RTPE_K8S_OPERATOR_SOCKET')?.value as string;
    assert.ok(op, `${name}: operator socket set`);
    const opMount = c.volumeMounts.find((m: any) => op.startsWith(`${m.mountPath}/`));
    assert.ok(opMount && !opMount.readOnly, `${name}: the operator socket's directory is a writable volume (the root fs is read-only)`);
    const opPath = ds.volumes.find((v: any) => v.name === opMount.name).hostPath?.path;
    assert.ok(!pod.volumes.some((v: any) => v.hostPath?.path === opPath), `${name}: no rtpengine pod mounts the operator socket's directory`);
  }
  assert.throws(() => renderChart({ allocator: { stateDir: '/run/rtpengine-k8s' } }), /stateDir must differ from socketDir/);
});

test('allocator: privileged only when asked, hostPath socket shared with the sidecars', () => {
  const ds = kind(renders.defaults!, 'DaemonSet')[0]!.spec.template.spec;
  assert.equal(ds.containers[0].securityContext.privileged, undefined);
  assert.deepEqual(ds.containers[0].securityContext.capabilities, { drop: ['ALL'] });
  assert.equal(kind(renders.fileStore!, 'DaemonSet')[0]!.spec.template.spec.containers[0].securityContext.privileged, true);
  const pod = deployment(renders.defaults!);
  assert.equal(ds.volumes.find((v: any) => v.name === 'socket').hostPath.path, pod.volumes.find((v: any) => v.name === 'allocator-socket').hostPath.path);
  assert.ok(ds.containers[0].ports.some((p: any) => p.name === 'metrics'));
  assert.ok(ds.containers[0].livenessProbe && ds.containers[0].readinessProbe);
});

test('HPA on sessions per pod with slow scale-down; KEDA alternative; PDB; headless Service', () => {
  const hpa = kind(renders.defaults!, 'HorizontalPodAutoscaler')[0]!;
  assert.equal(hpa.apiVersion, 'autoscaling/v2');
  assert.equal(hpa.spec.metrics[0].type, 'Pods');
  assert.equal(hpa.spec.metrics[0].pods.target.type, 'AverageValue');
  assert.ok(hpa.spec.behavior.scaleDown.stabilizationWindowSeconds >= 300);
  assert.equal(kind(renders.keda!, 'HorizontalPodAutoscaler').length, 0);
  const so = kind(renders.keda!, 'ScaledObject')[0]!;
  assert.match(so.spec.triggers[0].metadata.query, /rtpengine_k8s_sessions/);
  assert.equal(kind(renders.defaults!, 'PodDisruptionBudget').length, 1);
  const svc = kind(renders.defaults!, 'Service')[0]!;
  assert.equal(svc.spec.clusterIP, 'None');
  assert.ok(svc.spec.ports.some((p: any) => p.name === 'ng' && p.protocol === 'UDP'));
  // Replicas are the HPA's when it is on (a rendered count would fight it on every upgrade).
  assert.equal(kind(renders.defaults!, 'Deployment')[0]!.spec.replicas, undefined);
  assert.equal(kind(renders.noAllocator!, 'Deployment')[0]!.spec.replicas, 2);
});

test('Multus: NetworkAttachmentDefinition and the pod annotation match', () => {
  const r = renders.multus!;
  const nad = kind(r, 'NetworkAttachmentDefinition')[0]!;
  const cfg = JSON.parse(nad.spec.config);
  assert.equal(cfg.type, 'macvlan');
  assert.equal(cfg.ipam.type, 'whereabouts');
  assert.equal(cfg.ipam.range, '192.0.2.0/24');
  assert.equal(kind(r, 'Deployment')[0]!.spec.template.metadata.annotations['k8s.v1.cni.cncf.io/networks'], `${nad.metadata.name}@net1`);
  // The allocator reserves the IP itself in reserve mode: the NAD must not assign one too.
  assert.deepEqual(JSON.parse(kind(renders.hostDevice!, 'NetworkAttachmentDefinition')[0]!.spec.config).ipam, {});
});

// ---------------------------------------------------------------- RBAC --------------------------
type Rule = string; // "namespace|group|resource|verb"
const releaseNs = 'voice'; // renderChart's default release namespace
function chartRules(r: { objects: any[] }, ippoolNs: string): Map<string, Set<Rule>> {
  const out = new Map<string, Set<Rule>>();
  const roles = new Map([...kind(r, 'Role'), ...kind(r, 'ClusterRole')].map((o) => [`${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`, o]));
  for (const b of [...kind(r, 'RoleBinding'), ...kind(r, 'ClusterRoleBinding')]) {
    const role = roles.get(`${b.roleRef.kind}/${b.roleRef.kind === 'ClusterRole' ? '' : b.metadata.namespace}/${b.roleRef.name}`);
    assert.ok(role, `binding ${b.metadata.name} refers to a missing ${b.roleRef.kind}`);
    assert.ok(b.kind === 'ClusterRoleBinding' || b.roleRef.kind === 'Role', `${b.metadata.name}: a RoleBinding to a ClusterRole is not used here`);
    for (const s of b.subjects) {
      const who = String(s.name).replace(/^.*-(allocator|sidecar|kamailio-sync)$/, '$1');
      const set = out.get(who) ?? new Set();
      const ns = role.kind === 'ClusterRole' ? 'cluster' : role.metadata.namespace === releaseNs ? 'release' : role.metadata.namespace === ippoolNs ? 'ippools' : `other:${role.metadata.namespace}`;
      for (const rule of role.rules) for (const g of rule.apiGroups) for (const res of rule.resources) for (const v of rule.verbs) set.add(`${ns}|${g}|${res}|${v}`);
      out.set(who, set);
    }
  }
  return out;
}
function documentedRules(): Map<string, Set<Rule>> {
  const doc = loadYaml(join(repo, 'docs', 'rbac-rules.yaml')) as Record<string, Array<{ namespace: string; apiGroups: string[]; resources: string[]; verbs: string[] }>>;
  const out = new Map<string, Set<Rule>>();
  for (const [who, rules] of Object.entries(doc)) {
    const set = new Set<Rule>();
    for (const r of rules) for (const g of r.apiGroups) for (const res of r.resources) for (const v of r.verbs) set.add(`${r.namespace}|${g}|${res}|${v}`);
    out.set(who, set);
  }
  return out;
}
const sorted = (m: Map<string, Set<Rule>>) => Object.fromEntries([...m].sort().map(([k, s]) => [k, [...s].sort()]));

test('RBAC rendered by the chart equals docs/rbac-rules.yaml (kubernetes store, all programs)', () => {
  assert.deepEqual(sorted(chartRules(renders.full!, 'kube-system')), sorted(documentedRules()));
  // Smaller set-ups only drop rules, never add.
  const doc = documentedRules();
  for (const name of ['defaults', 'multus', 'fileStore', 'keda']) {
    for (const [who, set] of chartRules(renders[name]!, 'kube-system')) {
      for (const r of set) assert.ok(doc.get(who)?.has(r), `${name}: ${who} has undocumented ${r}`);
    }
  }
  assert.equal(kind(renders.noAllocator!, 'Role').length + kind(renders.noAllocator!, 'ClusterRole').length, 0);
});

/** The tables of docs/rbac.md (the kube helper's), one `## <program>` section each. */
function rbacMdRules(md: string): Map<string, Set<Rule>> {
  const out = new Map<string, Set<Rule>>();
  let who = '';
  for (const line of md.split('\n')) {
    const h = /^## +(\S+)/.exec(line);
    if (h) { who = h[1]!.replace(/[^\w-]/g, ''); continue; }
    if (!who || !line.startsWith('|')) continue;
    const cells = line.split('|').slice(1, -1).map((c) => c.trim());
    if (cells.length < 4 || cells[0] === 'apiGroup' || /^-+$/.test(cells[0]!)) continue;
    const strip = (c: string) => c.replace(/`/g, '').replace(/^""$/, '');
    const scope = /cluster/i.test(cells[3]!) ? 'cluster' : /pool-ns/.test(cells[3]!) ? 'ippools' : 'release';
    const set = out.get(who) ?? new Set<Rule>();
    for (const v of cells[2]!.split(',').map(strip).map((x) => x.trim()).filter(Boolean)) set.add(`${scope}|${strip(cells[0]!)}|${strip(cells[1]!)}|${v}`);
    out.set(who, set);
  }
  return out;
}

test('docs/rbac-rules.yaml mirrors the tables in docs/rbac.md', { skip: !exists(join(repo, 'docs', 'rbac.md')) && 'docs/rbac.md not written yet' }, () => {
  const fromMd = rbacMdRules(readFileSync(join(repo, 'docs', 'rbac.md'), 'utf8'));
  assert.ok(fromMd.size >= 3, `docs/rbac.md: found tables for ${[...fromMd.keys()].join(', ') || 'nothing'}`);
  assert.deepEqual(sorted(documentedRules()), sorted(fromMd));
});

function exists(p: string): boolean {
  try { readFileSync(p); return true; } catch { return false; }
}

// ---------------------------------------------------------------- env vs option sets ------------
function acceptedEnv(command: string): Set<string> {
  const c = commands.find((x) => x.name === command);
  assert.ok(c, `command '${command}' is not registered in src/commands.ts`);
  const set = { ...commonOptions, ...c.options } as OptionSet;
  return new Set(Object.entries(set).map(([k, d]) => envName(k, d)));
}

/** The command a container's env is meant for: its args, `drain` for an rtpengine container with
 *  the exec preStop, none for one without our binary (httpGet preStop, so it must set no env). */
function commandOf(c: any): string | undefined {
  if (c.args?.[0]) return c.args[0];
  if (c.lifecycle?.preStop?.exec?.command?.[1]) return c.lifecycle.preStop.exec.command[1];
  if (c.lifecycle?.preStop?.httpGet && !c.env) return undefined;
  if (c.name === 'redis' && c.command?.[0] === 'redis-server' && !c.env) return undefined; // call persistence's Redis: not our binary, no env
  throw new Error(`container ${c.name}: cannot tell which command it runs`);
}

test('every env var the chart sets is accepted by that container\'s command', () => {
  const problems = new Set<string>();
  for (const r of Object.values(renders)) {
    for (const o of r.objects.filter((x) => x.kind === 'Deployment' || x.kind === 'DaemonSet' || x.kind === 'Job')) {
      const spec = o.spec.template.spec;
      for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
        const cmd = commandOf(c);
        if (cmd === undefined) continue;
        const ok = acceptedEnv(cmd);
        for (const e of c.env ?? []) if (!ok.has(e.name)) problems.add(`${o.kind}/${c.name} sets ${e.name}, unknown to '${cmd}'`);
        // The preStop drain runs with this container's env: nothing there may change its target.
        if (c.lifecycle?.preStop && cmd !== 'drain') {
          const common = new Set(Object.entries(commonOptions).map(([k, d]) => envName(k, d)));
          const drainEnv = acceptedEnv('drain');
          for (const e of c.env ?? []) if (drainEnv.has(e.name) && !common.has(e.name)) problems.add(`${o.kind}/${c.name}: ${e.name} would also steer the preStop drain`);
        }
      }
    }
  }
  assert.deepEqual([...problems], []);
});

test('the Kamailio example: parseable, kamailio-sync env accepted, RBAC equals the documented one', () => {
  const file = join(repo, 'docs', 'examples', 'kamailio-sync.yaml');
  const docs = loadAll(file).filter(Boolean);
  const pod = docs.find((d: any) => d.kind === 'Deployment')!.spec.template.spec;
  const syncs = [...(pod.initContainers ?? []), ...pod.containers].filter((c: any) => c.args?.[0] === 'kamailio-sync');
  assert.equal(syncs.length, 2, 'the example has the --once init container and the native sidecar');
  const ok = acceptedEnv('kamailio-sync');
  for (const sync of syncs) {
    for (const e of sync.env ?? []) assert.ok(ok.has(e.name), `kamailio-sync does not accept ${e.name}`);
    for (const a of sync.args.slice(1)) assert.ok(ok.has(`RTPE_K8S_${a.replace(/^--/, '').replace(/=.*/, '').replace(/-/g, '_').toUpperCase()}`), `kamailio-sync does not accept ${a}`);
  }
  const role = docs.find((d: any) => d.kind === 'Role');
  const rules = new Set<string>();
  for (const r of role.rules) for (const g of r.apiGroups) for (const res of r.resources) for (const v of r.verbs) rules.add(`release|${g}|${res}|${v}`);
  // The example leaves --pod-annotations off, so it needs the EndpointSlice rules and nothing else.
  const documented = [...documentedRules().get('kamailio-sync')!].filter((r) => r.includes('endpointslices'));
  assert.deepEqual([...rules].sort(), documented.sort());
});

function loadAll(file: string): any[] {
  return yaml.loadAll(readFileSync(file, 'utf8')) as any[];
}
