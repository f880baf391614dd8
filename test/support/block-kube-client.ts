// `node --import ./test/support/block-kube-client.ts`: makes @kubernetes/client-node unresolvable
// in that process, so a test can show which code paths load it (and that the others never do).
import { register } from 'node:module';

const hooks = `export async function resolve(specifier, context, next) {
  if (specifier === '@kubernetes/client-node' || specifier.startsWith('@kubernetes/client-node/')) {
    throw new Error('blocked by test: ' + specifier);
  }
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);
