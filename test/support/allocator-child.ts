// A real allocator process for crash tests: the config as JSON in argv[2], the /proc/rtpengine
// stand-in over the directory it names; prints "ready" once serving. Killed with SIGKILL by tests.
// A start-up failure prints "<CODE> <message>" on stderr and exits with the catalogue's exit code.
import { startAllocator, type AllocatorConfig } from '../../src/allocator/allocator.js';
import { ProcRtpengine } from './proc-rtpengine.js';
import { silentLogger } from '../../src/log.js';
import { isCoded } from '../../src/errors.js';

const config = JSON.parse(process.argv[2]!) as AllocatorConfig;
try {
  const handle = await startAllocator(config, { log: silentLogger, procFs: new ProcRtpengine(config.procRoot) });
  process.stdout.write('ready\n');
  process.on('SIGTERM', () => { void handle.close().then(() => process.exit(0)); });
} catch (e) {
  process.stderr.write(`${isCoded(e) ? e.code : 'UNCODED'} ${(e as Error).message}\n`);
  process.exit(isCoded(e) ? e.exitCode : 70);
}
