// What a CLI command is: a name, its options, and a run function that gets the parsed config.
// Each program exports its commands from its own folder; src/cli.ts only lists them.
import type { Logger } from './log.js';
import type { OptionSet, Parsed } from './config.js';

export interface CommandContext {
  log: Logger;
  /** Aborted on SIGINT/SIGTERM (the second signal exits at once). */
  signal: AbortSignal;
  /** How the process was asked to stop, once it was. */
  stopReason: () => NodeJS.Signals | undefined;
  stdout: NodeJS.WritableStream;
}

export interface Command<O extends OptionSet = OptionSet> {
  name: string;
  summary: string;
  /** Usage line for positionals, e.g. `release <pod>`. */
  usage?: string;
  options: O;
  run(config: Parsed<O>, positionals: string[], ctx: CommandContext): Promise<number>;
}

export function defineCommand<O extends OptionSet>(c: Command<O>): Command<O> {
  return c;
}
