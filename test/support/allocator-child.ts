// A real allocator process for crash tests: the config as JSON in argv[2], the /proc/rtpengine
// stand-in over the directory it names; prints "ready" once serving. Killed with SIGKILL by tests.
import { startAllocator, type AllocatorConfig } from '../../src/allocator/allocator.js';
import { ProcRtpengine } from './proc-rtpengine.js';
import { silentLogger } from '../../src/log.js';

const config = JSON.parse(process.argv[2]!) as AllocatorConfig;
const handle = await startAllocator(config, { log: silentLogger, procFs: new ProcRtpengine(config.procRoot) });
process.stdout.write('ready\n');
process.on('SIGTERM', () => { void handle.close().then(() => process.exit(0)); });
