// Every CLI command, in the order `rtpengine-k8s help` lists them. One line per command.
import type { Command } from './command.js';

export const commands: readonly Command<any>[] = [
];
