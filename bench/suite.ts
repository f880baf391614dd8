// What a benchmark suite reports. Each bench/*.bench.ts default-exports a Suite; bench/run.ts
// runs each in its own child process, prints one table and writes bench/results.json.

export interface Row {
  suite: string;
  /** What was measured, e.g. "proxy offer+delete, 16 in flight". */
  name: string;
  /** The figure's unit: "ops/s", "µs", "ms", "MB", "ratio". */
  unit: string;
  /** Median over runs (or the single value). */
  value: number;
  /** p99 where it applies (latencies). */
  p99?: number;
  /** The goal, as text ("≤ 1.5 µs", "≥ 0.9×"), and whether this run met it. */
  goal?: string;
  met?: boolean;
  note?: string;
}

export interface SuiteContext {
  /** Quick mode (BENCH_QUICK=1): fewer iterations, same code paths. */
  quick: boolean;
  log: (msg: string) => void;
}

export interface Suite {
  name: string;
  /** Binaries the suite needs (rtpengine, kamailio); missing → reported as not run. */
  needs?: string[];
  run(ctx: SuiteContext): Promise<Row[]>;
}
