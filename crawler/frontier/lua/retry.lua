-- retry: give a lease back to be fetched again no earlier than now + delay.
-- ARGV: base, lease_id, delay_ms, count_attempt (0/1), host_backoff (0/1),
--       hold_reason (with host_backoff: what crawl status says held the host),
--       elapsed_ms (optional: what this counted attempt took, added to the URL's
--       attempt_ms until complete.lua deletes it; claim.lua hands it back)
-- host_backoff=1 (429, 503, robots.txt unreachable) holds back the whole host
-- until then and puts the URL at the front of its queue; otherwise only this
-- URL waits. Either way the URL keeps its priority band.
-- The caller decides when attempts are exhausted and calls complete instead.
-- Returns 1 when the URL was queued again, 0 for a stale lease.
local base = ARGV[1]
local id = ARGV[2]
local data = redis.call('HGET', KEYS[4], id)
if not data then return 0 end
local now = now_ms()
local host, _, attempts, depth, hops, url, _, _, _, band = split_lease(data)
if ARGV[4] == '1' then
  attempts = attempts + 1
  local elapsed = tonumber(ARGV[7] or 0)
  if elapsed and elapsed > 0 then
    redis.call('HINCRBYFLOAT', base .. 'attempt_ms', url, ARGV[7])
  end
end
redis.call('HDEL', KEYS[4], id)
redis.call('ZREM', KEYS[3], id)
local delay = tonumber(ARGV[3])
if ARGV[5] == '1' then
  local hk = base .. 'h:' .. host
  local nxt = math.max(hnum(hk, 'next', 0), now + delay)
  redis.call('HSET', hk, 'next', string.format('%d', nxt))
  hold_host(base, host, nxt, ARGV[6])
  push(base, host, attempts, depth, hops, url, true, band)
elseif delay > 0 then
  -- Waiting URLs keep their whole URL: the host's prefix table may be gone
  -- by the time they are due. dl counts them, so the host is not compacted.
  redis.call('ZADD', KEYS[2], string.format('%d', now + delay),
    delayed_member(host, attempts, depth, hops, band, url))
  redis.call('HINCRBY', base .. 'h:' .. host, 'dl', 1)
else
  push(base, host, attempts, depth, hops, url, true, band)
end
redis.call('HINCRBY', KEYS[7], 'leased', -1)
redis.call('HINCRBY', KEYS[7], 'queued', 1)
release_slot(base, host, now)
return 1
