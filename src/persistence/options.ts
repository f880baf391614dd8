// Options of rtpengine's call persistence (merged into the `sidecar` command): where the pod's
// Redis database is, and how long the sidecar waits for rtpengine to restore its calls.
import { z } from 'zod';
import { opt, type OptionSet, type Parsed } from '../config.js';
import { parseRedisUrl } from './resp.js';

export const persistenceOptions = {
  persistenceRedis: {
    ...opt.optionalString('call persistence: redis://[:password@]host:port/db, ONE DATABASE PER POD (rtpengine restores every key of it); rtpengine gets --redis/--redis-write to it and a crashed rtpengine comes back with its calls (ADR 0042). Empty = off'),
    schema: z.string().optional().refine((s) => !s || parseRedisUrl(s) !== undefined, 'expected redis://[:password@]host:port/db') as z.ZodType<string | undefined>,
  },
  persistenceCheckSeconds: opt.int('while running, check that Redis answers this often (a lost Redis is logged once, PERSISTENCE_REDIS_LOST, and rtpengine_k8s_persistence_enabled goes 0 until it is back)', 5, { min: 1, max: 3600 }),
  persistenceRestoreSeconds: opt.int('after a start over saved calls, wait this long for rtpengine to restore them before serving anyway', 30, { min: 1, max: 3600 }),
} satisfies OptionSet;

export type PersistenceConfig = Parsed<typeof persistenceOptions>;
