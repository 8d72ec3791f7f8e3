"""One Lua script that enqueues RQ jobs: claim idempotency keys, write job hashes, push ids, register queues.

The script writes exactly what RQ's ``Queue.enqueue_job`` writes for a job without dependencies — the job
hash (``rq:job:<id>``, fields as ``Job.to_dict``), the id pushed on ``rq:queue:<name>``, the queue key added
to ``rq:queues`` — so RQ and its tools cannot tell the difference. With an idempotency key, the key is
claimed in the same atomic step: a key that maps to a live job returns that job's id and writes nothing.

ARGV: queue_key, at_front (0/1), idem_ttl, job_ttl (0 = none), tenant_index_key ('' = none), tenant,
n_const, const field/value pairs..., then ONE blob holding every job: per job six big-endian 32-bit lengths
(id, idempotency key, data, description, retry_intervals, meta; 0 = absent) followed by those bytes. One
argument for the whole chunk keeps client-side packing out of the per-job cost.
Returns only what differs from the caller's ids: a flat list index, existing id, ... (1-based entry index) for
entries whose key is held by a live job.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.commands.core import Script
from rq.job import Job
from rq.queue import Queue

LUA = """
local queue_key = ARGV[1]
local at_front = ARGV[2] == '1'
local idem_ttl = tonumber(ARGV[3])
local job_ttl = tonumber(ARGV[4])
local tenant_index = ARGV[5]
local tenant = ARGV[6]
local n_const = tonumber(ARGV[7])
local const = {}
for i = 1, n_const * 2 do const[i] = ARGV[7 + i] end
local blob = ARGV[8 + n_const * 2]
local size = #blob
local pos = 1
local out = {}
local pushed = {}
local entry = 0
while pos <= size do
  entry = entry + 1
  local l_id, l_idem, l_data, l_desc, l_iv, l_meta = struct.unpack('>I4I4I4I4I4I4', blob, pos)
  pos = pos + 24
  local id = string.sub(blob, pos, pos + l_id - 1); pos = pos + l_id
  local idem = string.sub(blob, pos, pos + l_idem - 1); pos = pos + l_idem
  local data = string.sub(blob, pos, pos + l_data - 1); pos = pos + l_data
  local desc = string.sub(blob, pos, pos + l_desc - 1); pos = pos + l_desc
  local iv = string.sub(blob, pos, pos + l_iv - 1); pos = pos + l_iv
  local meta = string.sub(blob, pos, pos + l_meta - 1); pos = pos + l_meta
  local existing = nil
  if l_idem > 0 and not redis.call('SET', idem, id, 'NX', 'EX', idem_ttl) then
    -- the key is held: by a live job (return it), or by one whose data expired (take the key over)
    local held = redis.call('GET', idem)
    if held and redis.call('EXISTS', KEYS[1] .. held) == 1 then
      existing = held
    else
      redis.call('SET', idem, id, 'EX', idem_ttl)
    end
  end
  if existing then
    out[#out + 1] = entry
    out[#out + 1] = existing
  else
    local key = KEYS[1] .. id
    local fields = {unpack(const)}
    local n = #fields
    fields[n + 1] = 'data'; fields[n + 2] = data; fields[n + 3] = 'description'; fields[n + 4] = desc
    n = n + 4
    if l_iv > 0 then fields[n + 1] = 'retry_intervals'; fields[n + 2] = iv; n = n + 2 end
    if l_meta > 0 then fields[n + 1] = 'meta'; fields[n + 2] = meta; n = n + 2 end
    redis.call('HSET', key, unpack(fields))
    if job_ttl > 0 then redis.call('EXPIRE', key, job_ttl) end
    pushed[#pushed + 1] = id
  end
end
if #pushed > 0 then
  for i = 1, #pushed, 1000 do
    local last = math.min(i + 999, #pushed)
    if at_front then
      redis.call('LPUSH', queue_key, unpack(pushed, i, last))
    else
      redis.call('RPUSH', queue_key, unpack(pushed, i, last))
    end
  end
  redis.call('SADD', KEYS[2], queue_key)
  if tenant_index ~= '' then  -- what jobfleet.tenants.register_tenant does: index + fair workers' ready set
    redis.call('SADD', tenant_index, tenant)
    redis.call('ZADD', 'jobfleet:fair:' .. string.sub(tenant_index, 18) .. ':ready', 'NX', '-inf', tenant)
  end
end
return out
"""

Entry = tuple[str, str | None, bytes, str, str | None, bytes | None]
"""One job: id, idempotency key (None = none), data, description, retry_intervals JSON, meta (None = const)."""
_HEADER = struct.Struct(">IIIIII")
_scripts: dict[int, Script] = {}


def _script(conn: Redis) -> Script:
    script = _scripts.get(id(conn))
    if script is None or script.registered_client is not conn:
        script = _scripts[id(conn)] = conn.register_script(LUA)
    return script


def _blob(entries: Sequence[Entry]) -> bytes:
    parts: list[bytes] = []
    for job_id, idem_key, data, description, intervals, meta in entries:
        fields = (job_id.encode(), (idem_key or "").encode(), data, description.encode(),
                  (intervals or "").encode(), meta or b"")
        parts.append(_HEADER.pack(*map(len, fields)))
        parts.extend(fields)
    return b"".join(parts)


def _argv(
    queue_key: str, at_front: bool, idem_ttl: int, job_ttl: int | None, tenant_index: str | None, tenant: str,
    const: Mapping[str, str | bytes], entries: Sequence[Entry],
) -> list[Any]:
    argv: list[Any] = [queue_key, 1 if at_front else 0, idem_ttl, job_ttl or 0, tenant_index or "", tenant,
                       len(const)]
    for name, value in const.items():
        argv += (name, value)
    argv.append(_blob(entries))
    return argv


KEYS = [Job.redis_job_namespace_prefix, Queue.redis_queues_keys]


def _ids(entries: Sequence[Entry], reply: Sequence[Any]) -> list[str]:
    ids = [entry[0] for entry in entries]
    for i in range(0, len(reply), 2):
        ids[int(reply[i]) - 1] = _text(reply[i + 1])
    return ids


def run(
    conn: Redis, queue_key: str, at_front: bool, idem_ttl: int, job_ttl: int | None, tenant_index: str | None,
    tenant: str, const: Mapping[str, str | bytes], entries: Sequence[Entry],
) -> list[str]:
    """Run the script now (one round trip); the id each entry resolved to (its own, or a held key's job)."""
    reply = _script(conn)(keys=KEYS, args=_argv(queue_key, at_front, idem_ttl, job_ttl, tenant_index, tenant,
                                                  const, entries))
    return _ids(entries, reply)


def queue_call(
    pipe: Pipeline, conn: Redis, queue_key: str, at_front: bool, idem_ttl: int, job_ttl: int | None,
    tenant_index: str | None, tenant: str, const: Mapping[str, str | bytes], entries: Sequence[Entry],
) -> None:
    """Add one script call to ``pipe``, a pipeline of ``conn`` (redis-py loads the script if needed)."""
    _script(conn)(keys=KEYS, args=_argv(queue_key, at_front, idem_ttl, job_ttl, tenant_index, tenant, const,
                                         entries), client=pipe)


def execute(pipe: Pipeline, calls: Sequence[Sequence[Entry]]) -> list[list[str]]:
    """Execute ``pipe`` holding one script call per item of ``calls``; the ids each call's entries resolved to."""
    return [_ids(entries, reply) for entries, reply in zip(calls, pipe.execute(), strict=True)]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
