// The sidecar's persistence steps: before rtpengine starts, decide from the pod's Redis database
// whether its calls may be restored here and render --redis/--redis-write (or run without, loudly);
// after it answers, wait for the restore, re-learn the calls and mark the database as this pod's.
import { Gauge } from 'prom-client';
import type { Timer } from '../clock.js';
import { PersistenceError, SidecarError, isCoded } from '../errors.js';
import { METRIC_PREFIX } from '../metrics.js';
import { NgUdpClient } from '../ng/client.js';
import type { Registry } from 'prom-client';
import { done, skipped, type Step, type StartContext } from '../sidecar/startup.js';
import { RedisClient, parseRedisUrl, rtpengineRedisValue, type RedisTarget } from './resp.js';
import { OWNER_KEY, describeOwner, inspect, writeOwner, type Decision, type Owner } from './owner.js';
import { awaitRestore, incomplete } from './restore.js';
import { waitNgReady } from '../sidecar/rtpengine.js';

export interface PersistenceState { target: RedisTarget; self: Owner; decision: Decision; options: Record<string, string> }

/** rtpengine options the persistence step owns while it is on. */
export const PERSISTENCE_MANAGED = ['redis', 'redis-write', 'no-redis-required'] as const;

function metrics(registry: Registry) {
  const get = <T>(name: string, make: () => T): T => (registry.getSingleMetric(name) as T | undefined) ?? make();
  return {
    enabled: get(`${METRIC_PREFIX}persistence_enabled`, () => new Gauge({ name: `${METRIC_PREFIX}persistence_enabled`, help: '1 when rtpengine writes its calls to Redis (restored after a crash); 0 when off: not configured, Redis down at start or lost while running, or the database held calls that are not this pod\'s', registers: [registry] })),
    restored: get(`${METRIC_PREFIX}persistence_restored_calls`, () => new Gauge({ name: `${METRIC_PREFIX}persistence_restored_calls`, help: 'calls rtpengine restored from Redis at the last start', registers: [registry] })),
    refused: get(`${METRIC_PREFIX}persistence_refused_calls`, () => new Gauge({ name: `${METRIC_PREFIX}persistence_refused_calls`, help: 'calls found in Redis at start that belong to another pod, table or media IP (not restored, left untouched)', registers: [registry] })),
  };
}

export const persistenceStep: Step = {
  name: 'call persistence',
  async up(ctx) {
    const { cfg } = ctx;
    const m = metrics(ctx.registry);
    m.enabled.set(0);
    if (!cfg.persistenceRedis) return skipped('off (--persistence-redis not set)');
    const target = parseRedisUrl(cfg.persistenceRedis)!;
    for (const k of PERSISTENCE_MANAGED) if (k in cfg.rtpengineOptions) throw new SidecarError('RTPENGINE_OPTION_MANAGED', { option: k });
    const redisName = `${target.host}:${target.port}/${target.db}`;
    const self: Owner = { podUid: cfg.podUid, pod: ctx.pod, table: ctx.allocation!.table, ips: [...ctx.mediaIps] };
    let redis: RedisClient;
    try {
      redis = await RedisClient.connect(target);
    } catch (e) {
      const err = new PersistenceError('PERSISTENCE_OFF_REDIS_DOWN', { redis: redisName, reason: (e as Error).message });
      ctx.log.error({ pod: ctx.pod, code: err.code, redis: redisName }, err.message);
      return skipped(`OFF: Redis ${redisName} down at start`);
    }
    try {
      const decision = await inspect(redis, self);
      if (decision.action === 'refuse') {
        m.refused.set(decision.callIds.length);
        const err = new PersistenceError('PERSISTENCE_FOREIGN_CALLS', { redis: redisName, keys: decision.callIds.length, owner: describeOwner(decision.owner), self: describeOwner(self), why: decision.why });
        ctx.log.error({ pod: ctx.pod, code: err.code, why: decision.why, calls: decision.callIds.length }, err.message);
        return skipped(`OFF: ${decision.callIds.length} call(s) in ${redisName} are not this pod's (${decision.why})`);
      }
      const value = rtpengineRedisValue(target);
      const state: PersistenceState = { target, self, decision, options: { redis: value, 'redis-write': value, 'no-redis-required': 'true' } };
      ctx.persistence = state;
      m.enabled.set(1);
      // Exec mode: the supervisor restarts a dead rtpengine with the same options; its calls come back from Redis.
      const before = ctx.restartHooks;
      ctx.restartHooks = {
        async afterRestart(proc, attempt) {
          await before?.afterRestart?.(proc, attempt);
          await restoreAfterRestart(ctx, state, attempt);
        },
      };
      return done(decision.action === 'restore' ? `${redisName}: ${decision.callIds.length} call(s) of this pod to restore` : `${redisName}: empty, calls are saved from now on`,
        () => release(ctx, target, self));
    } finally {
      redis.close();
    }
  },
};

/**
 * At a clean stop (drain done, exit 0) the pod's calls in Redis are removed, and only while the
 * database is still marked as this pod's. After a failure (rtpengine died, start-up failed) they
 * are kept: the restarted container restores them.
 */
async function release(ctx: StartContext, target: RedisTarget, self: Owner): Promise<void> {
  const redisName = `${target.host}:${target.port}/${target.db}`;
  const stop = ctx.life.status().stop;
  if (!stop || stop.code !== 0) {
    ctx.log.info({ pod: ctx.pod, redis: redisName, why: stop?.why ?? 'start-up failed' }, 'call state kept in Redis for the restarted container to restore');
    return;
  }
  let redis: RedisClient | undefined;
  try {
    redis = await RedisClient.connect(target);
    const owner = await redis.get(OWNER_KEY);
    const ours = owner !== null && (JSON.parse(owner) as Owner).podUid === self.podUid;
    if (!ours) {
      const err = new PersistenceError('PERSISTENCE_RELEASE_SKIPPED', { redis: redisName, reason: owner === null ? 'the database is not marked as this pod\'s (the restore never completed)' : 'the database is marked as another pod\'s' });
      ctx.log.warn({ pod: ctx.pod, code: err.code }, err.message);
      return;
    }
    const keys = await redis.keys();
    const removed = await redis.del(...keys);
    ctx.log.info({ pod: ctx.pod, redis: redisName, removed }, 'call state removed from Redis at release');
  } catch (e) {
    const err = isCoded(e) ? e : new PersistenceError('PERSISTENCE_RELEASE_SKIPPED', { redis: redisName, reason: (e as Error).message });
    ctx.log.warn({ pod: ctx.pod, code: err.code, err: err.message }, 'call state in Redis not removed at release; the next pod on this database refuses it until removed');
  } finally {
    redis?.close();
  }
}

/** Redis lost while running: rtpengine keeps serving but saves nothing; say so (log once, metric 0) until it is back. */
function watchRedis(ctx: StartContext, target: RedisTarget, enabled: Gauge): Timer {
  const redisName = `${target.host}:${target.port}/${target.db}`;
  let lost = false;
  let busy = false;
  return ctx.clock.setInterval(() => {
    if (busy) return;
    busy = true;
    RedisClient.connect(target, 1000)
      .then(async (c) => { try { await c.command(['PING']); } finally { c.close(); } })
      .then(() => {
        if (!lost) return;
        lost = false;
        enabled.set(1);
        ctx.log.info({ pod: ctx.pod, redis: redisName }, 'Redis answers again: rtpengine saves its calls again');
      }, (e: unknown) => {
        if (lost) return;
        lost = true;
        enabled.set(0);
        const err = new PersistenceError('PERSISTENCE_REDIS_LOST', { redis: redisName, reason: (e as Error).message });
        ctx.log.error({ pod: ctx.pod, code: err.code }, err.message);
      })
      .finally(() => { busy = false; });
  }, ctx.cfg.persistenceCheckSeconds * 1000);
}

/**
 * A supervised restart (same options, table and IP): every call in the database is this pod's;
 * wait until rtpengine has restored them, before the proxy sends it traffic again.
 */
async function restoreAfterRestart(ctx: StartContext, st: PersistenceState, attempt: number): Promise<void> {
  const m = metrics(ctx.registry);
  let redis: RedisClient;
  try {
    redis = await RedisClient.connect(st.target);
  } catch (e) {
    // Redis lost while running: rtpengine started anyway (no-redis-required) but restored nothing.
    const err = new PersistenceError('PERSISTENCE_OFF_REDIS_DOWN', { redis: `${st.target.host}:${st.target.port}/${st.target.db}`, reason: (e as Error).message });
    ctx.log.error({ pod: ctx.pod, code: err.code, attempt }, `rtpengine restarted WITHOUT its calls: ${err.message}`);
    m.enabled.set(0);
    return;
  }
  const ng = new NgUdpClient({ host: ctx.ngUp.host, port: ctx.ngUp.port, timeoutMs: 500, retries: 2 });
  try {
    const expected = (await redis.keys()).filter((k) => k !== OWNER_KEY);
    const r = await awaitRestore({ ng, redis, clock: ctx.clock }, expected, { deadlineMs: ctx.cfg.persistenceRestoreSeconds * 1000 });
    if (r.pending.length) { const e = incomplete(r, expected.length); ctx.log.error({ pod: ctx.pod, code: e.code, attempt }, e.message); }
    for (const id of r.restored) ctx.proxy?.sessions.learn(id);
    m.restored.set(r.restored.length);
    await writeOwner(redis, st.self);
    ctx.log.info({ pod: ctx.pod, attempt, restored: r.restored.length, lost: r.lost.length, pending: r.pending.length, waitedMs: r.waitedMs }, 'calls restored from Redis after the rtpengine restart');
  } finally {
    ng.close();
    redis.close();
  }
}

/** After rtpengine answers: wait for its restore, re-learn the calls, mark the database as this pod's. */
export const restoreStep: Step = {
  name: 'call restore',
  async up(ctx) {
    const st = ctx.persistence;
    if (!st) return skipped('persistence off');
    const m = metrics(ctx.registry);
    const redis = await RedisClient.connect(st.target);
    const ng = new NgUdpClient({ host: ctx.ngUp.host, port: ctx.ngUp.port, timeoutMs: 500, retries: 2 });
    const deadlineMs = ctx.cfg.persistenceRestoreSeconds * 1000;
    try {
      // Config mode: rtpengine is another container and may not be up yet; its restore runs at its start.
      try {
        await waitNgReady(ctx.ngUp.host, ctx.ngUp.port, { timeoutMs: deadlineMs, clock: ctx.clock, abort: ctx.signal });
      } catch (e) {
        if (!isCoded(e, 'RTPENGINE_NOT_READY')) throw e;
        ctx.log.warn({ pod: ctx.pod, code: e.code }, `${e.message}: its calls are not re-learned now (the proxy's reconciliation picks them up once it answers)`);
        if (st.decision.action === 'fresh') await writeOwner(redis, st.self);
        return skipped(`rtpengine not answering within ${ctx.cfg.persistenceRestoreSeconds} s`);
      }
      let detail = 'nothing to restore';
      if (st.decision.action === 'restore') {
        const r = await awaitRestore({ ng, redis, clock: ctx.clock }, st.decision.callIds, { deadlineMs });
        if (r.pending.length) { const e = incomplete(r, st.decision.callIds.length); ctx.log.error({ pod: ctx.pod, code: e.code }, e.message); }
        for (const id of r.restored) ctx.proxy?.sessions.learn(id);
        m.restored.set(r.restored.length);
        if (r.lost.length) ctx.log.warn({ pod: ctx.pod, lost: r.lost.length, sample: r.lost[0] }, 'rtpengine could not restore some calls from Redis and removed them');
        ctx.log.info({ pod: ctx.pod, restored: r.restored.length, lost: r.lost.length, waitedMs: r.waitedMs }, 'calls restored from Redis');
        detail = `${r.restored.length} restored, ${r.lost.length} lost, ${r.pending.length} not restored, in ${r.waitedMs} ms`;
      }
      // The owner key is not a call: rtpengine may delete it at restore (newer releases do); write it again.
      await writeOwner(redis, st.self);
      const watch = watchRedis(ctx, st.target, m.enabled);
      return done(detail, async () => watch.cancel());
    } finally {
      ng.close();
      redis.close();
    }
  },
};
