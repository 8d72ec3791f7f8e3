-- Record a batch of successful job executions exactly as RQ's worker does, in ONE step: job hash
-- (status finished, started_at, ended_at, last_heartbeat), a SUCCESSFUL entry in the job's results stream
-- (rq:results:<id>, same fields as rq.results.Result), result TTLs, FinishedJobRegistry, StartedJobRegistry,
-- execution hash and the worker's execution set and counters.
-- A job whose started-registry entry is gone (crash recovery re-queued it meanwhile) is left alone.
-- KEYS: worker hash, worker executions set.
-- ARGV: worker name, job count, total working seconds, now (epoch s), then 10 per job: job id, execution id,
--       queue, started_at (ISO), ended_at (ISO), started (epoch s), ended (epoch s), result TTL,
--       return value (base64 serialized, '' for None), '1' if the job has dependencies.
-- Returns {ids not recorded, ids with dependents (their dependents still need enqueueing)}.
local worker = ARGV[1]
local count = tonumber(ARGV[2])
local now = tonumber(ARGV[4])
local lost, ekeys, members, depkeys, depids = {}, {}, {}, {}, {}
local finished = {}
local ok = 0
for j = 0, count - 1 do
  local b = 5 + j * 10
  local id, eid, q = ARGV[b], ARGV[b + 1], ARGV[b + 2]
  local ttl = tonumber(ARGV[b + 7])
  local ck = id .. ':' .. eid
  if redis.call('ZREM', 'rq:wip:' .. q, ck) == 1 then
    local jkey = 'rq:job:' .. id
    redis.call('HSET', jkey, 'status', 'finished', 'started_at', ARGV[b + 3], 'ended_at', ARGV[b + 4],
               'last_heartbeat', ARGV[b + 4])
    local rkey = 'rq:results:' .. id
    if ARGV[b + 8] ~= '' then
      redis.call('XADD', rkey, 'MAXLEN', 10, '*', 'type', 1, 'worker_name', worker, 'return_value', ARGV[b + 8],
                 'execution_id', eid, 'execution_started_at', ARGV[b + 5], 'execution_ended_at', ARGV[b + 6])
    else
      redis.call('XADD', rkey, 'MAXLEN', 10, '*', 'type', 1, 'worker_name', worker,
                 'execution_id', eid, 'execution_started_at', ARGV[b + 5], 'execution_ended_at', ARGV[b + 6])
    end
    redis.call('EXPIRE', rkey, ttl)
    redis.call('EXPIRE', jkey, ttl)
    if ARGV[b + 9] == '1' then redis.call('EXPIRE', jkey .. ':dependencies', ttl) end
    local fq = finished[q]
    if not fq then fq = {}; finished[q] = fq end
    fq[#fq + 1] = now + ttl; fq[#fq + 1] = id
    ekeys[#ekeys + 1] = 'rq:execution:' .. ck
    members[#members + 1] = ck
    depkeys[#depkeys + 1] = jkey .. ':dependents'; depids[#depids + 1] = id
    ok = ok + 1
  else
    lost[#lost + 1] = id
  end
end
local with_dependents = {}
if ok > 0 then
  redis.call('DEL', unpack(ekeys))
  redis.call('SREM', KEYS[2], unpack(members))
  for q, args in pairs(finished) do redis.call('ZADD', 'rq:finished:' .. q, unpack(args)) end
  redis.call('HINCRBY', KEYS[1], 'successful_job_count', ok)
  redis.call('HINCRBYFLOAT', KEYS[1], 'total_working_time', ARGV[3])
  -- one EXISTS for the whole batch; per-job checks only when some job has dependents
  if redis.call('EXISTS', unpack(depkeys)) > 0 then
    for i, key in ipairs(depkeys) do
      if redis.call('EXISTS', key) == 1 then with_dependents[#with_dependents + 1] = depids[i] end
    end
  end
end
return {lost, with_dependents}
