#!/usr/bin/env node
// The one entry point: `rtpengine-k8s <command> [--options]`. Reads argv and the environment,
// parses them once per command schema, and hands typed config to the command's run().
import { commonOptions, describeOptions, parseOptions, type OptionSet } from './config.js';
import { closeLogger, createLogger, DEFAULT_REPEAT } from './log.js';
import { Exit, RtpeK8sError } from './errors.js';
import type { Command, CommandContext } from './command.js';
import { commands } from './commands.js';

function help(all: readonly Command<any>[], which?: Command<any>): string {
  if (which) {
    const rows = describeOptions({ ...commonOptions, ...which.options } as OptionSet);
    const w = Math.max(...rows.map((r) => r.flag.length));
    return [
      `rtpengine-k8s ${which.usage ?? which.name} — ${which.summary}`,
      '',
      ...rows.map((r) => `  ${r.flag.padEnd(w)}  ${r.help} [env ${r.env}; default ${r.default}]`),
    ].join('\n');
  }
  const w = Math.max(...all.map((c) => c.name.length));
  return ['usage: rtpengine-k8s <command> [options]   (rtpengine-k8s help <command> for its options)', '',
    ...all.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`)].join('\n');
}

/** How long exit waits for queued log lines; a stalled stdout never holds the process longer. */
const LOG_CLOSE_TIMEOUT_MS = 2000;
let logStalled = false;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    const which = commands.find((c) => c.name === rest[0]);
    process.stdout.write(help(commands, which) + '\n');
    return Exit.OK;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`rtpengine-k8s: unknown command '${name}'\n\n${help(commands)}\n`);
    return Exit.USAGE;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(help(commands, command) + '\n');
    return Exit.OK;
  }
  const set = { ...commonOptions, ...command.options } as OptionSet;
  const { config, positionals } = parseOptions(set, rest, process.env);
  const log = createLogger({ level: config.logLevel as string, pretty: config.logPretty as boolean, name: `rtpengine-k8s ${command.name}`,
    repeat: { ...DEFAULT_REPEAT, max: config.logRepeatLimit as number } });

  const ac = new AbortController();
  let stopReason: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopReason) {
      log.warn({ signal: sig }, 'second signal: exiting at once');
      process.exit(Exit.TEMPFAIL);
    }
    stopReason = sig;
    log.info({ signal: sig }, 'stop requested');
    ac.abort(sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // A closed terminal (SIGHUP) stops as Ctrl-C does: children are drained and stopped, never orphaned.
  process.on('SIGHUP', onSignal);
  const ctx: CommandContext = { log, signal: ac.signal, stopReason: () => stopReason, stdout: process.stdout };
  try {
    return await command.run(config, positionals, ctx);
  } finally {
    logStalled = !(await closeLogger(log, LOG_CLOSE_TIMEOUT_MS));
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // A write stuck on a stalled stdout pipe would keep the event loop alive for ever.
    if (logStalled) process.exit(code);
  },
  (e: unknown) => {
    if (e instanceof RtpeK8sError) {
      process.stderr.write(`rtpengine-k8s: [${e.code}] ${e.message}\n`);
      process.exitCode = e.exitCode;
    } else {
      process.stderr.write(`rtpengine-k8s: unexpected failure: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exitCode = Exit.SOFTWARE;
    }
    if (logStalled) process.exit();
  },
);
