"""Lua scripts of the workflow engine: every state change of a workflow is one atomic script.

Keys of workflow ``W = jobfleet:wf:<id>`` (hash: status, counts, timestamps, spec):
``W:n:<k>`` node k (counts q/r/s/f/c, left, gate, flags, edges), ``W:p:<k>`` pending count per child,
``W:st`` task states (field ``<k>:<i>`` = r/s/f/c, absent = queued), ``W:tpl:<k>`` the RQ job hash
template of node k. Task (RQ job) ids are ``<workflow id>-<k>-<i>``. Scripts address keys they compute
(a single Redis, not Cluster).
"""

from __future__ import annotations

COMMON = r"""
local wid = ARGV[1]
local NOW_ISO = ARGV[2]
local NOW = tonumber(ARGV[3])
local W = 'jobfleet:wf:' .. wid
local S = W .. ':st'
local function nkey(n) return W .. ':n:' .. n end
local function split(s)
  local t = {}
  if s and s ~= '' then for x in string.gmatch(s, '[^,]+') do t[#t + 1] = x end end
  return t
end
local function terminal(st) return st == 'succeeded' or st == 'failed' or st == 'canceled' end
local function num(v) return tonumber(v) or 0 end

local function set_status(status)
  local old = redis.call('HGET', W, 'status')
  if old == status then return end
  redis.call('HSET', W, 'status', status)
  local score = redis.call('HGET', W, 'created_at')
  if old then redis.call('ZREM', 'jobfleet:wf:index:' .. old, wid) end
  redis.call('ZADD', 'jobfleet:wf:index:' .. status, score, wid)
end

local function push_ids(ids, qkey)
  for s = 1, #ids, 1000 do
    redis.call('RPUSH', qkey, unpack(ids, s, math.min(s + 999, #ids)))
  end
  if #ids > 0 then redis.call('SADD', 'rq:queues', qkey) end
end

local function releasable(n)
  if terminal(redis.call('HGET', W, 'status')) then return false end
  return redis.call('HGET', nkey(n), 'skip') ~= '1'
end

local function release(n, i)
  if not releasable(n) then return end
  if redis.call('HEXISTS', S, n .. ':' .. i) == 1 then return end
  local id = wid .. '-' .. n .. '-' .. i
  redis.call('HSET', 'rq:job:' .. id, 'status', 'queued', 'enqueued_at', NOW_ISO)
  push_ids({id}, redis.call('HGET', nkey(n), 'qkey'))
end

local function open_gate(n)
  if not releasable(n) then return end
  local N = nkey(n)
  local size = num(redis.call('HGET', N, 'size'))
  local pend = redis.call('HGET', N, 'pend') == '1'
  local P = W .. ':p:' .. n
  local ids = {}
  for i = 0, size - 1 do
    if (not pend or num(redis.call('HGET', P, i)) == 0) and redis.call('HEXISTS', S, n .. ':' .. i) == 0 then
      local id = wid .. '-' .. n .. '-' .. i
      redis.call('HSET', 'rq:job:' .. id, 'status', 'queued', 'enqueued_at', NOW_ISO)
      ids[#ids + 1] = id
    end
  end
  push_ids(ids, redis.call('HGET', N, 'qkey'))
end

local function dec_child(m, j)
  local left = redis.call('HINCRBY', W .. ':p:' .. m, j, -1)
  if left == 0 and num(redis.call('HGET', nkey(m), 'gate')) == 0 then release(m, j) end
end

local function cancel_waiting()
  local nodes = num(redis.call('HGET', W, 'nodes'))
  for n = 0, nodes - 1 do
    local N = nkey(n)
    local q = num(redis.call('HGET', N, 'q'))
    if q > 0 then
      redis.call('HINCRBY', N, 'c', q)
      redis.call('HINCRBY', N, 'left', -q)
      redis.call('HSET', N, 'q', 0)
    end
  end
  local q = num(redis.call('HGET', W, 'queued'))
  redis.call('HINCRBY', W, 'canceled', q)
  redis.call('HSET', W, 'queued', 0)
end

local BUCKETS = {0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400}
local function expire_record()
  local ttl = num(redis.call('HGET', W, 'ttl'))
  if ttl <= 0 then return end
  redis.call('EXPIRE', W, ttl)
  redis.call('EXPIRE', S, ttl)
  for n = 0, num(redis.call('HGET', W, 'nodes')) - 1 do
    redis.call('EXPIRE', nkey(n), ttl)
    redis.call('EXPIRE', W .. ':p:' .. n, ttl)
    redis.call('EXPIRE', W .. ':tpl:' .. n, ttl)
  end
end

local function end_workflow(final)
  set_status(final)
  redis.call('HSET', W, 'ended_at', NOW)
  expire_record()
  local duration = math.max(0, NOW - num(redis.call('HGET', W, 'created_at')))
  local bucket = '+Inf'
  for _, b in ipairs(BUCKETS) do if duration <= b then bucket = tostring(b) break end end
  local ST = 'jobfleet:wf:stats'
  redis.call('HINCRBY', ST, 'ended:' .. final, 1)
  redis.call('HINCRBYFLOAT', ST, 'seconds_sum', duration)
  redis.call('HINCRBY', ST, 'bucket:' .. bucket, 1)
  local kinds = {'end'}
  if final == 'succeeded' then kinds[2] = 'success' elseif final == 'failed' then kinds[2] = 'failure' end
  local qkey = redis.call('HGET', W, 'cb_qkey')
  for _, kind in ipairs(kinds) do
    local id = redis.call('HGET', W, 'cb_' .. kind)
    if id and id ~= '' then
      redis.call('HSET', 'rq:job:' .. id, 'status', 'queued', 'enqueued_at', NOW_ISO)
      push_ids({id}, qkey)
    end
  end
end

local function skip_downstream(n)
  local stack = {}
  for _, m in ipairs(split(redis.call('HGET', nkey(n), 'dall'))) do stack[#stack + 1] = m end
  for _, m in ipairs(split(redis.call('HGET', nkey(n), 'dn2n'))) do stack[#stack + 1] = m end
  while #stack > 0 do
    local m = table.remove(stack)
    local M = nkey(m)
    if redis.call('HGET', M, 'skip') ~= '1' then
      redis.call('HSET', M, 'skip', 1)
      local q = num(redis.call('HGET', M, 'q'))
      if q > 0 then
        redis.call('HINCRBY', M, 'c', q)
        redis.call('HINCRBY', M, 'left', -q)
        redis.call('HSET', M, 'q', 0)
        redis.call('HINCRBY', W, 'queued', -q)
        redis.call('HINCRBY', W, 'canceled', q)
      end
      for _, d in ipairs(split(redis.call('HGET', M, 'dall'))) do stack[#stack + 1] = d end
      for _, d in ipairs(split(redis.call('HGET', M, 'dn2n'))) do stack[#stack + 1] = d end
    end
  end
end

local function maybe_end()
  local status = redis.call('HGET', W, 'status')
  if terminal(status) then return status end
  if num(redis.call('HGET', W, 'queued')) == 0 and num(redis.call('HGET', W, 'running')) == 0 then
    end_workflow('succeeded')
    return 'succeeded'
  end
  return status
end
"""

#: Create the RQ job hashes of one node from its template; push the ready ones. ARGV[4..]: node index,
#: number of children, ready children ("*" = all, else comma list).
CREATE_NODE = COMMON + r"""
local n, size, ready = ARGV[4], tonumber(ARGV[5]), ARGV[6]
local tpl = redis.call('HGETALL', W .. ':tpl:' .. n)
local prefix = 'rq:job:' .. wid .. '-' .. n .. '-'
local ids = {}
if ready == '*' then
  tpl[#tpl + 1] = 'status'
  tpl[#tpl + 1] = 'queued'
  tpl[#tpl + 1] = 'enqueued_at'
  tpl[#tpl + 1] = NOW_ISO
  for i = 0, size - 1 do
    redis.call('HSET', prefix .. i, unpack(tpl))
    ids[#ids + 1] = wid .. '-' .. n .. '-' .. i
  end
else
  for i = 0, size - 1 do redis.call('HSET', prefix .. i, unpack(tpl)) end
  for _, x in ipairs(split(ready)) do
    redis.call('HSET', prefix .. x, 'status', 'queued', 'enqueued_at', NOW_ISO)
    ids[#ids + 1] = wid .. '-' .. n .. '-' .. x
  end
end
push_ids(ids, redis.call('HGET', nkey(n), 'qkey'))
return #ids
"""

#: A task starts: queued -> running. Returns 'run' or 'skip' (already ended, or its workflow/node is over).
START_TASK = COMMON + r"""
local n, i = ARGV[4], ARGV[5]
if redis.call('EXISTS', W) == 0 then return 'skip' end
local f = n .. ':' .. i
local st = redis.call('HGET', S, f)
if st == 's' or st == 'f' or st == 'c' then return 'skip' end
if st == 'r' then return 'run' end
local status = redis.call('HGET', W, 'status')
local N = nkey(n)
if terminal(status) or redis.call('HGET', N, 'skip') == '1' then
  redis.call('HSET', S, f, 'c')
  return 'skip'
end
redis.call('HSET', S, f, 'r')
redis.call('HINCRBY', W, 'queued', -1)
redis.call('HINCRBY', W, 'running', 1)
redis.call('HINCRBY', N, 'q', -1)
redis.call('HINCRBY', N, 'r', 1)
if status == 'queued' then
  set_status('running')
  redis.call('HSET', W, 'started_at', NOW)
end
return 'run'
"""

#: A task attempt ended with outcome 's' (succeeded), 'f' (failed for good) or 'retry' (will run again).
#: Returns {what happened, workflow status}; repeated calls for one ended task change nothing.
END_TASK = COMMON + r"""
local n, i, outcome = ARGV[4], ARGV[5], ARGV[6]
if redis.call('EXISTS', W) == 0 then return {'gone', ''} end
local f = n .. ':' .. i
local st = redis.call('HGET', S, f)
if st == 's' or st == 'f' or st == 'c' then return {'duplicate', redis.call('HGET', W, 'status')} end
local N = nkey(n)
local from, from_w = 'q', 'queued'
if st == 'r' then from, from_w = 'r', 'running' end
if outcome == 'retry' and terminal(redis.call('HGET', W, 'status')) then
  -- the workflow ended meanwhile: the retry will not run, the task counts as canceled
  redis.call('HSET', S, f, 'c')
  if from == 'r' then  -- (a waiting task was already counted canceled when the workflow ended)
    redis.call('HINCRBY', W, 'running', -1)
    redis.call('HINCRBY', W, 'canceled', 1)
    redis.call('HINCRBY', N, 'r', -1)
    redis.call('HINCRBY', N, 'c', 1)
    redis.call('HINCRBY', N, 'left', -1)
  end
  return {'canceled', redis.call('HGET', W, 'status')}
end
if outcome == 'retry' then
  if from == 'r' then
    redis.call('HDEL', S, f)
    redis.call('HINCRBY', W, 'running', -1)
    redis.call('HINCRBY', W, 'queued', 1)
    redis.call('HINCRBY', N, 'r', -1)
    redis.call('HINCRBY', N, 'q', 1)
  end
  return {'retry', redis.call('HGET', W, 'status')}
end
redis.call('HSET', S, f, outcome)
redis.call('HINCRBY', W, from_w, -1)
redis.call('HINCRBY', N, from, -1)
redis.call('HINCRBY', W, outcome == 's' and 'succeeded' or 'failed', 1)
redis.call('HINCRBY', N, outcome, 1)
local left = redis.call('HINCRBY', N, 'left', -1)
local status = redis.call('HGET', W, 'status')
if terminal(status) then return {'counted', status} end
if outcome == 'f' and num(redis.call('HGET', N, 'f')) > num(redis.call('HGET', N, 'maxf'))
    and redis.call('HGET', N, 'bad') ~= '1' then
  redis.call('HSET', N, 'bad', 1)
  local policy = redis.call('HGET', N, 'pol')
  if policy == 'fail' then
    redis.call('HSET', W, 'error', 'task ' .. redis.call('HGET', N, 'id') .. ' failed')
    cancel_waiting()
    end_workflow('failed')
    return {'ended', 'failed'}
  elseif policy == 'skip' then
    skip_downstream(n)
  end
end
local size = num(redis.call('HGET', N, 'size'))
local ii = tonumber(i)
if redis.call('HGET', N, 'seq') == '1' and ii + 1 < size then dec_child(n, ii + 1) end
for _, m in ipairs(split(redis.call('HGET', N, 'dn2n'))) do dec_child(m, ii) end
if left <= 0 and redis.call('HGET', N, 'done') ~= '1' then
  redis.call('HSET', N, 'done', 1)
  for _, m in ipairs(split(redis.call('HGET', N, 'dall'))) do
    if redis.call('HINCRBY', nkey(m), 'gate', -1) == 0 then open_gate(m) end
  end
end
local final = maybe_end()
if terminal(final) then return {'ended', final} end
return {'ok', final}
"""

#: Cancel: waiting tasks and running ones count as canceled; returns {status, ids of running tasks}.
CANCEL = COMMON + r"""
local status = redis.call('HGET', W, 'status')
if not status then return {'gone'} end
if terminal(status) then return {status} end
cancel_waiting()
local out = {'canceled'}
local states = redis.call('HGETALL', S)
for k = 1, #states, 2 do
  if states[k + 1] == 'r' then
    local field = states[k]
    local n, i = string.match(field, '^(%d+):(%d+)$')
    redis.call('HSET', S, field, 'c')
    redis.call('HINCRBY', nkey(n), 'r', -1)
    redis.call('HINCRBY', nkey(n), 'c', 1)
    redis.call('HINCRBY', nkey(n), 'left', -1)
    redis.call('HINCRBY', W, 'running', -1)
    redis.call('HINCRBY', W, 'canceled', 1)
    out[#out + 1] = wid .. '-' .. n .. '-' .. i
  end
end
redis.call('HSET', W, 'error', 'canceled')
end_workflow('canceled')
return out
"""
