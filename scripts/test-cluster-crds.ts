// `npm run test:cluster` helper: installs the whereabouts (and NAD) CRDs from test/crds/ on the
// cluster KUBECONFIG names — only those it lacks — and waits until they are served; `remove` deletes
// exactly the ones `install` created (listed in the state file). Uses nothing but KUBECONFIG.
import { readFileSync, readdirSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as yaml from 'js-yaml';
import { ApiextensionsV1Api, KubeConfig, type V1CustomResourceDefinition } from '../src/kube/k8s.js';

const [verb, stateFile] = process.argv.slice(2);
if ((verb !== 'install' && verb !== 'remove') || !stateFile) {
  process.stderr.write('usage: tsx scripts/test-cluster-crds.ts install|remove STATE_FILE\n');
  process.exit(64);
}
const kc = new KubeConfig();
kc.loadFromDefault();
const api = kc.makeApiClient(ApiextensionsV1Api);
const dir = join(import.meta.dirname, '..', 'test', 'crds');

if (verb === 'install') {
  const created: string[] = [];
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.yaml'))) {
    for (const doc of yaml.loadAll(readFileSync(join(dir, f), 'utf8')) as V1CustomResourceDefinition[]) {
      if (doc?.kind !== 'CustomResourceDefinition') continue;
      const name = doc.metadata!.name!;
      try {
        await api.readCustomResourceDefinition({ name });
        process.stdout.write(`CRD ${name}: already installed, left as it is\n`);
        continue;
      } catch (e) { if ((e as { code?: number }).code !== 404) throw e; }
      delete (doc as { status?: unknown }).status;
      await api.createCustomResourceDefinition({ body: doc });
      created.push(name);
      process.stdout.write(`CRD ${name}: installed from test/crds/${f}\n`);
    }
  }
  writeFileSync(stateFile, JSON.stringify(created));
  for (const name of created) {
    for (let i = 0; ; i++) {
      const crd = await api.readCustomResourceDefinition({ name });
      if (crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
      if (i > 300) throw new Error(`CRD ${name} not Established after 60 s`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
} else {
  const created = existsSync(stateFile) ? JSON.parse(readFileSync(stateFile, 'utf8')) as string[] : [];
  for (const name of created) {
    await api.deleteCustomResourceDefinition({ name }).catch((e: { code?: number }) => { if (e.code !== 404) throw e; });
    process.stdout.write(`CRD ${name}: removed (installed by this run)\n`);
  }
  rmSync(stateFile, { force: true });
}
