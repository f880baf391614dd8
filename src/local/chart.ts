// The scale-proof picture: sessions per pod over time, with the scaling steps marked, drawn by
// vega-lite (compiled to a vega spec, rendered to SVG in Node — no canvas, no hand-drawn SVG).
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { TimelinePoint } from './run.js';

export async function sessionsChartSvg(points: readonly TimelinePoint[], events: ReadonlyArray<{ t: number; what: string }>, t0: number, title: string): Promise<string> {
  const data = points.map((p) => ({ s: (p.t - t0) / 1000, pod: p.pod, sessions: p.sessions }));
  const marks = events.map((e) => ({ s: (e.t - t0) / 1000, what: e.what }));
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title, width: 720, height: 300,
    layer: [
      {
        data: { values: data },
        mark: { type: 'line', interpolate: 'step-after' },
        encoding: {
          x: { field: 's', type: 'quantitative', title: 'seconds since start' },
          y: { field: 'sessions', type: 'quantitative', title: 'sessions (rtpengine)' },
          color: { field: 'pod', type: 'nominal', title: 'pod' },
        },
      },
      { data: { values: marks }, mark: { type: 'rule', strokeDash: [4, 4], color: 'gray' }, encoding: { x: { field: 's', type: 'quantitative' } } },
      {
        data: { values: marks },
        mark: { type: 'text', angle: 270, align: 'left', baseline: 'bottom', dx: 4, fontSize: 9, color: 'gray' },
        encoding: { x: { field: 's', type: 'quantitative' }, y: { value: 295 }, text: { field: 'what' } },
      },
    ],
  };
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}
