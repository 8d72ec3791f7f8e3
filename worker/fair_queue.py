"""``FairQueue``: reliable dequeue that picks the tenant furthest below its fair share, in ONE Lua script.

A job of tenant ``t`` on queue ``q`` is in the RQ queue ``q~t`` (default-tenant jobs in ``q``; see
``jobfleet.tenants``). One dequeue is one script (``_DEQUEUE``) that, atomically:

1. tries the worker's queues in priority order (``worker.priority``: strict, or a weighted random order
   drawn by the caller), or — with aging — first the queue whose next job waited longest beyond the limit;
2. within a queue, picks the eligible tenant with the lowest ``usage / weight`` (``worker.fair_policy``)
   from the sorted set ``jobfleet:fair:<q>:ready`` of backlogged tenants: O(log tenants), plus one step per
   tenant skipped because its queue turned out empty (it is then removed), capped, or held back by the
   compute reservation;
3. LMOVEs the job into ``rq:queue:<q~t>:intermediate`` exactly as ``ReliableQueue`` does, so the worker
   registers it as started in one transaction and ``worker.recovery`` returns it if the worker dies first;
4. charges the tenant a provisional run time (the queue's mean), so concurrent picks spread over tenants.

When the job ends, ``job_ended`` (a second script) replaces the provisional charge by the measured run
seconds, adds them to the served total and updates the mean. Usage is stored time-inflated (see
``worker.fair_policy``): order never changes with time, and ``t0`` is rebased when values grow large.

Keys per queue ``q``: ``jobfleet:tenants:<q>`` (set, the tenant index written at submit),
``jobfleet:fair:<q>:ready`` (zset tenant -> score), ``:usage`` (hash tenant -> inflated run-seconds),
``:served`` (hash tenant -> run-seconds served, never decayed), ``:meta`` (hash ``t0``, ``avg``, ``cursor``).
Global: ``jobfleet:fair:weights`` and ``jobfleet:fair:caps`` (hashes, tenant -> value).

Tenants enter the ready set when a submit registers them (``register_tenant``); jobs re-queued by RQ
itself (retries, recovery, requeue from the DLQ) are found by a few SSCAN steps of the tenant index per
dequeue. A tenant's running count (for caps and the reservation) is read from its started registry and
intermediate list, so a crashed worker never leaks it. Like RQ, this uses keys not passed as KEYS: fine on
a single Redis (or a replicated one), not on Redis Cluster.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any, ClassVar

from redis import Redis
from redis.exceptions import NoScriptError, RedisError
from rq import Queue
from rq.job import Job

from jobfleet.logs import log_event
from jobfleet.settings import Settings
from jobfleet.tenants import CAPS_KEY, WEIGHTS_KEY, split_tenant_queue, tenant_queue_names
from worker.priority import queue_order
from worker.reliable_queue import ReliableQueue

QUEUE_KEY_PREFIX = "rq:queue:"

# Shared by both scripts. ARGV[1] is the half-life (seconds, 0 = no decay).
_COMMON = r"""
local time = redis.call('TIME')
local NOW = tonumber(time[1]) + tonumber(time[2]) / 1000000
local HALF_LIFE = tonumber(ARGV[1])
local WEIGHTS, CAPS = KEYS[1], KEYS[2]

local function qkey(q, t) if t == 'default' then return 'rq:queue:' .. q end return 'rq:queue:' .. q .. '~' .. t end
local function wipkey(q, t) if t == 'default' then return 'rq:wip:' .. q end return 'rq:wip:' .. q .. '~' .. t end
local function fkey(q, part) return 'jobfleet:fair:' .. q .. ':' .. part end
local function weight(t)
  local w = tonumber(redis.call('HGET', WEIGHTS, t))
  if w == nil or w <= 0 then return 1 end
  return w
end
local function inflate(at, t0) if HALF_LIFE > 0 then return 2 ^ ((at - t0) / HALF_LIFE) end return 1 end

-- t0 of q's stored usage; when values are inflated past 2^32, scale them all down and move t0 to now
local function base(q)
  local meta = fkey(q, 'meta')
  local t0 = tonumber(redis.call('HGET', meta, 't0'))
  if t0 == nil then
    redis.call('HSET', meta, 't0', tostring(NOW))
    return NOW
  end
  if HALF_LIFE > 0 and (NOW - t0) / HALF_LIFE > 32 then
    local g = 2 ^ (-(NOW - t0) / HALF_LIFE)
    local usage = fkey(q, 'usage')
    local flat = redis.call('HGETALL', usage)
    for i = 1, #flat, 2 do redis.call('HSET', usage, flat[i], tostring(tonumber(flat[i + 1]) * g)) end
    local ready = fkey(q, 'ready')
    local scored = redis.call('ZRANGEBYSCORE', ready, '-inf', '+inf', 'WITHSCORES')
    for i = 1, #scored, 2 do
      local s = tonumber(scored[i + 1])
      if s ~= -math.huge then redis.call('ZADD', ready, tostring(s * g), scored[i]) end
    end
    redis.call('HSET', meta, 't0', tostring(NOW))
    return NOW
  end
  return t0
end
local function tenant_score(q, t) return (tonumber(redis.call('HGET', fkey(q, 'usage'), t)) or 0) / weight(t) end
"""

# KEYS: weights, caps. ARGV: half-life, worker name, reservation, aging s, scan count of this call, default
# charge s, fair (1/0), scan count when nothing was found, queue names in the order to try.
# Returns false or {queue key, job id, tenant, charge, time, queue}.
_DEQUEUE = _COMMON + r"""
local WORKER, RESERVATION, AGING = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local SCAN, EST, FAIR, IDLE_SCAN = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7] == '1', tonumber(ARGV[8])

local function running(q, t)
  return redis.call('ZCARD', wipkey(q, t)) + redis.call('LLEN', qkey(q, t) .. ':intermediate')
end

local function refresh(q)
  local ready = fkey(q, 'ready')
  for _, t in ipairs(redis.call('ZRANGEBYSCORE', ready, '-inf', '-inf')) do
    redis.call('ZADD', ready, tostring(tenant_score(q, t)), t)
  end
  if redis.call('LLEN', qkey(q, 'default')) > 0 and not redis.call('ZSCORE', ready, 'default') then
    redis.call('ZADD', ready, tostring(tenant_score(q, 'default')), 'default')
  end
  if SCAN > 0 then
    local meta = fkey(q, 'meta')
    local reply = redis.call('SSCAN', 'jobfleet:tenants:' .. q, redis.call('HGET', meta, 'cursor') or '0',
                             'COUNT', SCAN)
    redis.call('HSET', meta, 'cursor', reply[1])
    for _, t in ipairs(reply[2]) do
      if not redis.call('ZSCORE', ready, t) and redis.call('LLEN', qkey(q, t)) > 0 then
        redis.call('ZADD', ready, tostring(tenant_score(q, t)), t)
      end
    end
  end
end

local function restricted(q)
  if RESERVATION <= 0 then return false end
  local members = redis.call('SMEMBERS', 'rq:workers:' .. q)
  local me, busy = 'rq:worker:' .. WORKER, 0
  for _, w in ipairs(members) do
    if w ~= me and redis.call('HGET', w, 'state') == 'busy' then busy = busy + 1 end
  end
  return busy + 1 > #members - math.floor(#members * RESERVATION + 0.5)
end

local function choose(q)
  base(q)
  refresh(q)
  local only_idle = restricted(q)
  local ready = fkey(q, 'ready')
  local offset, size = 0, 1
  while true do
    local batch = redis.call('ZRANGE', ready, offset, offset + size - 1)
    size = 16
    if #batch == 0 then return nil end
    local removed = 0
    for _, t in ipairs(batch) do
      if redis.call('LLEN', qkey(q, t)) == 0 then
        redis.call('ZREM', ready, t)
        removed = removed + 1
      else
        local cap = tonumber(redis.call('HGET', CAPS, t))
        if cap == nil and not only_idle then return t end
        local r = running(q, t)
        if (cap == nil or r < cap) and (not only_idle or r == 0) then return t end
      end
    end
    offset = offset + #batch - removed
  end
end

-- Unix seconds of RQ's enqueued_at ('%Y-%m-%dT%H:%M:%S.%fZ'), days-from-civil
local function epoch(s)
  local y, mo, d, h, mi, sec = string.match(s, '^(%d+)-(%d+)-(%d+)T(%d+):(%d+):([%d%.]+)')
  if not y then return nil end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * ((mo + 9) % 12) + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return (era * 146097 + doe - 719468) * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec)
end

local function waited(key)
  local head = redis.call('LINDEX', key, 0)
  if not head then return 0 end
  local stamp = redis.call('HGET', 'rq:job:' .. head, 'enqueued_at')
  local at = stamp and epoch(stamp)
  if not at then return 0 end
  return NOW - at
end

local best_q, best_t, best_age = nil, nil, -1
local function pick()
  for i = 9, #ARGV do
    local q = ARGV[i]
    local t = nil
    if FAIR then
      t = choose(q)
    elseif redis.call('LLEN', qkey(q, 'default')) > 0 then
      t = 'default'
    end
    if t then
      if AGING <= 0 then
        best_q, best_t = q, t
        return
      end
      local age = waited(qkey(q, t))
      if best_q == nil then
        best_q, best_t = q, t
        if age > AGING then best_age = age end
      elseif age > AGING and age > best_age then
        best_q, best_t, best_age = q, t, age
      end
    end
  end
end
pick()
if not best_q and FAIR and SCAN < IDLE_SCAN then  -- nothing found: look further into the tenant index
  SCAN = IDLE_SCAN
  pick()
end
if not best_q then return false end
local key = qkey(best_q, best_t)
local job_id = redis.call('LMOVE', key, key .. ':intermediate', 'LEFT', 'RIGHT')
if not job_id then return false end
local charge = 0
if FAIR then
  local t0 = base(best_q)
  charge = tonumber(redis.call('HGET', fkey(best_q, 'meta'), 'avg')) or EST
  local used = tonumber(redis.call('HINCRBYFLOAT', fkey(best_q, 'usage'), best_t, tostring(charge * inflate(NOW, t0))))
  local ready = fkey(best_q, 'ready')
  if redis.call('LLEN', key) == 0 then
    redis.call('ZREM', ready, best_t)
  else
    redis.call('ZADD', ready, tostring(used / weight(best_t)), best_t)
  end
end
return {key, job_id, best_t, tostring(charge), tostring(NOW), best_q}
"""

# KEYS: weights, caps. ARGV: half-life, queue, tenant, run seconds, provisional charge, its time, mean's alpha.
_JOB_ENDED = _COMMON + r"""
local q, t, run_s = ARGV[2], ARGV[3], tonumber(ARGV[4])
local charge, charged_at, alpha = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local t0 = base(q)
local usage = fkey(q, 'usage')
local inc = run_s * inflate(NOW, t0) - charge * inflate(charged_at, t0)
local used = tonumber(redis.call('HINCRBYFLOAT', usage, t, tostring(inc)))
if used < 0 then
  redis.call('HSET', usage, t, '0')
  used = 0
end
redis.call('ZADD', fkey(q, 'ready'), 'XX', tostring(used / weight(t)), t)
redis.call('HINCRBYFLOAT', fkey(q, 'served'), t, tostring(run_s))
local meta = fkey(q, 'meta')
local avg = tonumber(redis.call('HGET', meta, 'avg'))
if avg == nil then avg = run_s else avg = avg + alpha * (run_s - avg) end
redis.call('HSET', meta, 'avg', tostring(avg))
return 1
"""

MEAN_ALPHA = 0.2  # weight of the newest run in the queue's mean run time (the provisional charge)


def run_script(connection: Redis, script: str, keys: list[str], args: list[Any]) -> Any:
    """EVALSHA ``script`` (EVAL once when the server does not have it yet)."""
    sha = _SHAS.get(script) or _SHAS.setdefault(script, hashlib.sha1(script.encode()).hexdigest())
    try:
        return connection.evalsha(sha, len(keys), *keys, *args)
    except NoScriptError:
        return connection.eval(script, len(keys), *keys, *args)


_SHAS: dict[str, str] = {}


@dataclass(frozen=True)
class Charge:
    """The provisional run time charged to a tenant when its job was dequeued."""

    queue: str
    tenant: str
    seconds: float
    at: float  # Redis time of the charge


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class FairQueue(ReliableQueue):
    """A ``ReliableQueue`` whose dequeue is weighted-fair between tenants and priority-ordered by mode.

    Configure it with :func:`fair_queue_class` (one subclass per worker); ``job_ended`` must be called
    when a dequeued job ends, with its run seconds.
    """

    fair: ClassVar[bool] = True
    half_life: ClassVar[float] = 300.0
    reservation: ClassVar[float] = 0.0
    aging: ClassVar[float] = 0.0
    priority_mode: ClassVar[str] = "strict"
    priority_weights: ClassVar[dict[str, float]] = {}
    worker_name: ClassVar[str] = ""
    scan_count: ClassVar[int] = 16
    scan_every: ClassVar[float] = 0.1  # fraction of busy dequeues that also take an index scan step
    default_charge: ClassVar[float] = 1.0
    rng: ClassVar[random.Random] = random.Random()
    charges: ClassVar[dict[str, Charge]] = {}

    @classmethod
    def move_first(cls, connection: Redis, queue_keys: list[str]) -> tuple[str, str] | None:
        """Move the next job (priority order, then fair share) into its intermediate list: ``(key, id)``."""
        names = [k[len(QUEUE_KEY_PREFIX):] if k.startswith(QUEUE_KEY_PREFIX) else k for k in queue_keys]
        order = queue_order(cls.priority_mode, names, cls.priority_weights, cls.rng)
        # the index scan (finds tenants re-queued without a submit) runs in 1 of 10 calls, and whenever
        # nothing else was found
        scan = cls.scan_count if cls.rng.random() < cls.scan_every else 0
        args: list[Any] = [cls.half_life, cls.worker_name, cls.reservation, cls.aging, scan,
                           cls.default_charge, 1 if cls.fair else 0, cls.scan_count, *order]
        result = run_script(connection, _DEQUEUE, [WEIGHTS_KEY, CAPS_KEY], args)
        if not result:
            return None
        queue_key, job_id, tenant = _text(result[0]), _text(result[1]), _text(result[2])
        if cls.fair:
            cls.charges[job_id] = Charge(_text(result[5]), tenant, float(_text(result[3])), float(_text(result[4])))
        return queue_key, job_id

    @classmethod
    def job_ended(cls, connection: Redis, job: Job, queue: Queue, run_s: float) -> None:
        """Account ``run_s`` seconds to the job's tenant (replacing its provisional charge); never raises."""
        charge = cls.charges.pop(job.id, None)
        if not cls.fair:
            return
        base_queue, tenant = split_tenant_queue(queue.name)
        if charge is None:
            charge = Charge(base_queue, tenant, 0.0, 0.0)
        try:
            run_script(connection, _JOB_ENDED, [WEIGHTS_KEY, CAPS_KEY],
                       [cls.half_life, charge.queue, charge.tenant, max(0.0, run_s), charge.seconds, charge.at,
                        MEAN_ALPHA])
        except RedisError as exc:  # usage is advisory: a lost update must not stop the worker
            log_event("fair_accounting_failed", level=30, job_id=job.id, queue=queue.name,
                      error=f"{type(exc).__name__}: {exc}")


def fair_queue_class(settings: Settings) -> type[FairQueue]:
    """A ``FairQueue`` subclass configured from ``settings`` (its ``worker_name`` is set by the worker)."""
    attrs: dict[str, Any] = {
        "fair": settings.fairness,
        "half_life": settings.fair_half_life,
        "reservation": settings.fair_reservation,
        "aging": settings.priority_aging,
        "priority_mode": settings.priority_mode,
        "priority_weights": dict(settings.priority_weights),
        "rng": random.Random(),
        "charges": {},
    }
    return type("FairQueue", (FairQueue,), attrs)


def attach(queue_class: type[Queue], worker_name: str) -> type[FairQueue] | None:
    """``queue_class`` as a FairQueue bound to ``worker_name`` (for the reservation), or None if it is not one."""
    if not (isinstance(queue_class, type) and issubclass(queue_class, FairQueue)):
        return None
    queue_class.worker_name = worker_name
    return queue_class


def uses_fair_queue(settings: Settings) -> bool:
    """True when the worker needs ``FairQueue`` (fair share, weighted priorities or aging)."""
    return settings.fairness or settings.priority_mode != "strict" or settings.priority_aging > 0


def tenant_queues(connection: Redis, queues: list[Queue], queue_class: type[Queue] = Queue) -> list[Queue]:
    """The tenant queues (``q~t``) of ``queues``, for maintenance (registry cleanup, stranded-job recovery)."""
    found: list[Queue] = []
    for queue in queues:
        for name in tenant_queue_names(connection, queue.name):
            found.append(queue_class(name, connection=connection, serializer=queue.serializer))
    return found
