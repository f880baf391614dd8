// A logger whose JSON lines a test reads back (the one helper for it: tests assert on decisions
// and levels the code logs, through the real pino root of src/log.ts).
import { createLogger, type Logger } from '../../src/log.js';

export type LogLine = Record<string, unknown>;

/** A real logger at `level` writing into `lines` (each line parsed). */
export function captureLog(level: 'debug' | 'info' | 'warn' | 'error' = 'info'): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log = createLogger({ level }, { write: (s: string) => { lines.push(JSON.parse(s) as LogLine); } });
  return { log, lines };
}
