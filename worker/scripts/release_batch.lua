-- Give claimed jobs that never started back to the FRONT of their queues, in their original order, undoing
-- the claim (started-registry member, execution hash, worker execution set, status, attempt count).
-- A job whose started-registry entry is already gone (recovered meanwhile) is skipped.
-- KEYS: worker executions set. ARGV: job count, then 3 per job in claim order: job id, execution id, queue.
-- Returns the number of jobs put back.
local count = tonumber(ARGV[1])
local back = 0
for j = count - 1, 0, -1 do
  local b = 2 + j * 3
  local id, eid, q = ARGV[b], ARGV[b + 1], ARGV[b + 2]
  local ck = id .. ':' .. eid
  if redis.call('ZREM', 'rq:wip:' .. q, ck) == 1 then
    redis.call('DEL', 'rq:execution:' .. ck)
    redis.call('SREM', KEYS[1], ck)
    local jkey = 'rq:job:' .. id
    if redis.call('EXISTS', jkey) == 1 then
      redis.call('HSET', jkey, 'status', 'queued')
      redis.call('HDEL', jkey, 'started_at', 'worker_name')
      redis.call('HINCRBY', jkey, 'jf_attempt', -1)
      redis.call('LPUSH', 'rq:queue:' .. q, id)
      back = back + 1
    end
  end
end
return back
