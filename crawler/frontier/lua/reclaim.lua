-- reclaim: return expired leases (their worker died or stalled) to the front
-- of their host queues, counting the attempt. Any worker may run it.
-- ARGV: base, max_leases
-- Returns the number of leases reclaimed.
local base = ARGV[1]
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local data = redis.call('HGET', KEYS[4], id)
  redis.call('ZREM', KEYS[3], id)
  if data then
    redis.call('HDEL', KEYS[4], id)
    local host, e = lease_entry(data, true)
    redis.call('LPUSH', base .. 'q:' .. host, e)
    redis.call('HINCRBY', KEYS[7], 'leased', -1)
    redis.call('HINCRBY', KEYS[7], 'queued', 1)
    release_slot(base, host, now)
  end
end
return #ids
