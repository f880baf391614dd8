// Every CLI command, in the order `rtpengine-k8s help` lists them. One line per command.
import type { Command } from './command.js';
import { allocatorCommand, ctlCommand } from './allocator/commands.js';
import { sidecarCommand } from './sidecar/main.js';
import { statusCommand } from './sidecar/status-command.js';
import { localCommand } from './local.js';
import { drainCommand } from './sidecar/drain-command.js';
import { kamailioSyncCommand } from './kamailio/commands.js';

export const commands: readonly Command<any>[] = [
  allocatorCommand,
  ctlCommand,
  sidecarCommand,
  statusCommand,
  localCommand,
  drainCommand,
  kamailioSyncCommand,
];
