-- robots: record a robots.txt fetch made in a lease's politeness slot, and
-- give that lease back: its page is fetched in a later slot, spaced from the
-- robots.txt request like any two requests to the host.
-- Stores the verdict for every worker (with its TTL), releases the fetch lock
-- if the caller still holds it, sets the host's Crawl-delay (already capped)
-- and counts a capped one in stats ``robots_capped``.
-- ARGV: base, lease_id, host, origin, verdict, ttl_ms, crawl_delay_ms
--       ('' = keep the host's, '-1' = clear it), capped (0/1), lock_token
-- Returns 1 when the lease was given back, 0 for a stale lease (the verdict
-- is stored either way).
local base = ARGV[1]
local id = ARGV[2]
local host = ARGV[3]
local origin = ARGV[4]
local now = now_ms()
redis.call('SET', base .. 'robots:' .. origin, ARGV[5], 'PX', ARGV[6])
local lock = base .. 'robots_lock:' .. origin
if redis.call('GET', lock) == ARGV[9] then redis.call('DEL', lock) end
local hk = base .. 'h:' .. host
local crawl_delay = ARGV[7]
if crawl_delay == '-1' then
  redis.call('HDEL', hk, 'crawl_delay')
elseif crawl_delay ~= '' then
  redis.call('HSET', hk, 'crawl_delay', crawl_delay)
end
if ARGV[8] == '1' then redis.call('HINCRBY', KEYS[7], 'robots_capped', 1) end

local data = redis.call('HGET', KEYS[4], id)
if not data then return 0 end
local lhost, _, attempts, depth, url = split_lease(data)
redis.call('HDEL', KEYS[4], id)
redis.call('ZREM', KEYS[3], id)
-- The host's next request waits its delay (or the Crawl-delay just learnt)
-- from now, the end of the robots.txt fetch, not from the claim: that fetch
-- is a host's first request, on a new connection, and may have reached the
-- server late; counted from its end, the next start can never come too soon.
local delay = math.max(hnum(hk, 'delay', 0), hnum(hk, 'crawl_delay', 0))
if lhost == host and now + delay > hnum(hk, 'next', 0) then
  redis.call('HSET', hk, 'next', string.format('%d', now + delay))
end
redis.call('LPUSH', base .. 'q:' .. lhost, entry(attempts, depth, url))
redis.call('HINCRBY', KEYS[7], 'leased', -1)
redis.call('HINCRBY', KEYS[7], 'queued', 1)
release_slot(base, lhost, now)
return 1
