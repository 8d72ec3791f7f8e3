-- Batched reliable dequeue: claim up to ARGV[1] jobs from the queues in priority order, in ONE atomic step.
-- Each job leaves its queue and, in the same script, is registered as RQ registers a started job: status
-- 'started' (+ worker_name, started_at, last_heartbeat) in its hash, an execution hash rq:execution:<id>:<exec>,
-- a member <id>:<exec> of the queue's StartedJobRegistry (rq:wip:<queue>) and of the worker's execution set.
-- No moment exists where a claimed job lives only in a worker's memory: a worker that dies leaves its claimed
-- jobs in the started registry, where crash recovery finds them. Jobs whose hash is gone are dropped.
-- KEYS: queue_1..queue_n, wip_1..wip_n (same order), worker executions set.
-- ARGV: limit, worker name, now (RQ ISO format), now (epoch s), registry score, execution TTL s,
--       execution id prefix, default timeout, default retries_left ('' = none), default retry_intervals,
--       default result TTL, then optionally one cap per queue ('' = none): at most cap jobs of that queue
--       run at once, counting its started registry and its fork-mode intermediate list (a tenant's cap).
-- Returns two strings per claimed job:
--   header "queue index|job id|execution id|timeout|result ttl|attempt|has dependencies 0/1|full path 0/1"
--   hash   every field and value of the job hash after the claim, each as "<byte length>:<bytes>"
local nq = (#KEYS - 1) / 2
local limit = tonumber(ARGV[1])
local worker = ARGV[2]
local wexec = KEYS[#KEYS]
local full_fields = {success_callback_name = true, failure_callback_name = true, stopped_callback_name = true,
                     repeats_left = true, rate_limit_key = true, webhooks = true}
local out = {}
local members = {}
local n = 0
for qi = 1, nq do
  if n >= limit then break end
  local take = limit - n
  local cap = tonumber(ARGV[11 + qi])
  if cap then
    take = math.min(take, cap - redis.call('ZCARD', KEYS[nq + qi]) - redis.call('LLEN', KEYS[qi] .. ':intermediate'))
  end
  local ids = false
  if take > 0 then ids = redis.call('LPOP', KEYS[qi], take) end
  if ids then
    local zargs = {}
    for _, id in ipairs(ids) do
      local jkey = 'rq:job:' .. id
      local h = redis.call('HGETALL', jkey)
      if #h > 0 then
        n = n + 1
        local attempt, timeout, retries, ttl, result_ttl, deps, full = 0, '', '', '', '', '0', '0'
        local parts = {}
        for i = 1, #h, 2 do
          local k, v = h[i], h[i + 1]
          if k == 'jf_attempt' then attempt = tonumber(v) or 0
          elseif k == 'timeout' then timeout = v
          elseif k == 'retries_left' then retries = v
          elseif k == 'ttl' then ttl = v
          elseif k == 'result_ttl' then result_ttl = v
          elseif k == 'dependency_ids' then if v ~= '' and v ~= '[]' then deps = '1' end
          elseif full_fields[k] and v ~= '' then full = '1'
          end
          parts[#parts + 1] = #k .. ':' .. k .. #v .. ':' .. v
        end
        local eid = ARGV[7] .. n
        local upd = {'status', 'started', 'worker_name', worker, 'started_at', ARGV[3], 'last_heartbeat', ARGV[3],
                     'jf_attempt', tostring(attempt + 1)}
        if timeout == '' then
          timeout = ARGV[8]
          upd[#upd + 1] = 'timeout'; upd[#upd + 1] = timeout
        end
        if retries == '' and ARGV[9] ~= '' then
          upd[#upd + 1] = 'retries_left'; upd[#upd + 1] = ARGV[9]
          upd[#upd + 1] = 'retry_intervals'; upd[#upd + 1] = ARGV[10]
        end
        redis.call('HSET', jkey, unpack(upd))
        if ttl ~= '' then redis.call('PERSIST', jkey) end
        for i = 1, #upd do parts[#parts + 1] = #upd[i] .. ':' .. upd[i] end
        if result_ttl == '' then result_ttl = ARGV[11] end
        if tonumber(result_ttl) <= 0 then full = '1' end
        local ck = id .. ':' .. eid
        local ekey = 'rq:execution:' .. ck
        redis.call('HSET', ekey, 'id', eid, 'job_id', id, 'created_at', ARGV[4], 'last_heartbeat', ARGV[4],
                   'worker_name', worker)
        redis.call('EXPIRE', ekey, ARGV[6])
        zargs[#zargs + 1] = ARGV[5]; zargs[#zargs + 1] = ck
        members[#members + 1] = ck
        out[#out + 1] = table.concat({qi, id, eid, timeout, result_ttl, attempt + 1, deps, full}, '|')
        out[#out + 1] = table.concat(parts)
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
