import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sessionsChartSvg } from './chart.js';

test('the sessions picture is an SVG with one line per pod and the scaling steps marked', async () => {
  const t0 = 1_000_000;
  const points = [0, 1, 2, 3].flatMap((s) => [{ t: t0 + s * 1000, pod: 'local-a', sessions: s }, { t: t0 + s * 1000, pod: 'local-b', sessions: 3 - s }]);
  const svg = await sessionsChartSvg(points, [{ t: t0 + 1500, what: 'scale in to 1' }], t0, 'test');
  assert.match(svg, /^<svg /);
  assert.equal((svg.match(/class="mark-line role-mark/g) ?? []).length, 2, "one line per pod");
  assert.match(svg, /local-a/);
  assert.match(svg, /local-b/);
  assert.match(svg, /scale in to 1/);
});
