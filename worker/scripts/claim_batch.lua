-- Batched reliable dequeue: claim up to ARGV[1] jobs from the queues in priority order, in ONE atomic step.
-- Each job leaves its queue and, in the same script, is registered as RQ registers a started job: status
-- 'started' (+ worker_name, started_at, last_heartbeat) in its hash, an execution hash rq:execution:<id>:<exec>,
-- a member <id>:<exec> of the queue's StartedJobRegistry (rq:wip:<queue>) and of the worker's execution set.
-- No moment exists where a claimed job lives only in a worker's memory: a worker that dies leaves its claimed
-- jobs in the started registry, where crash recovery finds them.
-- KEYS: queue_1..queue_n, wip_1..wip_n (same order), worker executions set.
-- ARGV: limit, worker name, now (RQ ISO format), now (epoch s), registry score, execution TTL s,
--       execution id prefix, default timeout, default retries_left ('' = none), default retry_intervals.
-- Returns {queue index, job id, execution id, {field, value, ...}} per claimed job (hash after the claim).
local nq = (#KEYS - 1) / 2
local limit = tonumber(ARGV[1])
local worker = ARGV[2]
local wexec = KEYS[#KEYS]
local out = {}
local members = {}
local n = 0
for qi = 1, nq do
  if n >= limit then break end
  local ids = redis.call('LPOP', KEYS[qi], limit - n)
  if ids then
    local zargs = {}
    for _, id in ipairs(ids) do
      local jkey = 'rq:job:' .. id
      local h = redis.call('HGETALL', jkey)
      if #h > 0 then
        n = n + 1
        local f = {}
        for i = 1, #h, 2 do f[h[i]] = h[i + 1] end
        local eid = ARGV[7] .. n
        local upd = {'status', 'started', 'worker_name', worker, 'started_at', ARGV[3], 'last_heartbeat', ARGV[3],
                     'jf_attempt', tostring((tonumber(f['jf_attempt']) or 0) + 1)}
        if (f['timeout'] or '') == '' then
          upd[#upd + 1] = 'timeout'; upd[#upd + 1] = ARGV[8]
        end
        if (f['retries_left'] or '') == '' and ARGV[9] ~= '' then
          upd[#upd + 1] = 'retries_left'; upd[#upd + 1] = ARGV[9]
          upd[#upd + 1] = 'retry_intervals'; upd[#upd + 1] = ARGV[10]
        end
        redis.call('HSET', jkey, unpack(upd))
        if (f['ttl'] or '') ~= '' then redis.call('PERSIST', jkey) end
        for i = 1, #upd, 2 do f[upd[i]] = upd[i + 1] end
        local ck = id .. ':' .. eid
        local ekey = 'rq:execution:' .. ck
        redis.call('HSET', ekey, 'id', eid, 'job_id', id, 'created_at', ARGV[4], 'last_heartbeat', ARGV[4],
                   'worker_name', worker)
        redis.call('EXPIRE', ekey, ARGV[6])
        zargs[#zargs + 1] = ARGV[5]; zargs[#zargs + 1] = ck
        members[#members + 1] = ck
        local flat = {}
        for k, v in pairs(f) do flat[#flat + 1] = k; flat[#flat + 1] = v end
        out[#out + 1] = {qi, id, eid, flat}
      end
    end
    if #zargs > 0 then redis.call('ZADD', KEYS[nq + qi], unpack(zargs)) end
  end
end
if #members > 0 then
  redis.call('SADD', wexec, unpack(members))
  redis.call('EXPIRE', wexec, tonumber(ARGV[6]) + 60)
end
return out
