// The one logger root: pino JSON to stdout (stderr for CLI-style commands); components take
// `log.child({ component })` and log decisions with their facts, not prose.
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

export interface LogOptions {
  level: string;
  /** Human-readable single lines instead of JSON (local runs); JSON is the default. */
  pretty?: boolean;
  /** 1 = stdout (default), 2 = stderr. */
  fd?: 1 | 2;
  name?: string;
}

export function createLogger(opts: LogOptions, dest?: DestinationStream): Logger {
  const destination = dest ?? pino.destination({ fd: opts.fd ?? 1, sync: false });
  if (opts.pretty) {
    return pino({ level: opts.level, name: opts.name, base: undefined, timestamp: false }, prettyStream(destination));
  }
  return pino({ level: opts.level, name: opts.name, base: { pid: process.pid } }, destination);
}

/** A logger that drops everything (tests that do not look at logs). */
export const silentLogger: Logger = pino({ level: 'silent' });

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** Minimal pretty printer: `LEVEL component msg key=value …` per line, no extra dependency. */
function prettyStream(out: DestinationStream): DestinationStream {
  return {
    write(line: string) {
      try {
        const { level, msg, component, name, ...rest } = JSON.parse(line) as Record<string, unknown>;
        const facts = Object.entries(rest)
          .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
          .join(' ');
        const who = (component ?? name ?? '') as string;
        out.write(`${(LEVELS[level as number] ?? String(level)).padEnd(5)} ${who ? `[${who}] ` : ''}${msg ?? ''}${facts ? `  ${facts}` : ''}\n`);
      } catch {
        out.write(line);
      }
    },
  };
}
