-- due: queue the done URLs whose adaptive revisit time has come
-- (revisit_adaptive = true; crawler/discovery/revisit_schedule.py). complete.lua put
-- each URL's path in its host's due:<host>, scored by the unix second it is
-- due, and the host in due_hosts, scored by its earliest. A URL queued
-- otherwise meanwhile (crawl recrawl: marked '*') is dropped from the
-- schedule here and scheduled again by its next result: queued once a visit.
-- ARGV: base, max_urls, limit and delay_ms (the host's policy if its state
--       was compacted away meanwhile).
-- Returns the number of URLs queued.
local base = ARGV[1]
local budget = tonumber(ARGV[2])
local now = now_ms()
local now_s = math.floor(now / 1000)
local dh = base .. 'due_hosts'
local total = 0
for _, host in ipairs(redis.call('ZRANGEBYSCORE', dh, '-inf', now_s, 'LIMIT', 0, budget)) do
  if total >= budget then break end
  local dk = base .. 'due:' .. host
  local vk = base .. 'v:' .. host
  local count = 0
  local known = {}
  for _, field in ipairs(redis.call('ZRANGEBYSCORE', dk, '-inf', now_s, 'LIMIT', 0,
                                    budget - total)) do
    redis.call('ZREM', dk, field)
    local state = redis.call('HGET', vk, field)
    if state and queue_revisit(base, host, field, state, known) then count = count + 1 end
  end
  -- The host's turn comes back with its earliest URL still scheduled.
  local first = redis.call('ZRANGE', dk, 0, 0, 'WITHSCORES')
  if #first == 2 then
    redis.call('ZADD', dh, first[2], host)
  else
    redis.call('ZREM', dh, host)
  end
  queue_revisits_done(base, host, count, ARGV[3], ARGV[4], now)
  total = total + count
end
if total > 0 then redis.call('HINCRBY', KEYS[7], 'queued', total) end
return total
