-- robots: record a robots.txt fetch made in a lease's politeness slot.
-- Stores the verdict for every worker (with its TTL), releases the fetch lock
-- if the caller still holds it, and sets the host's Crawl-delay (already
-- capped; a capped one counts in stats ``robots_capped``).
-- A failed fetch (fail=1) counts against the origin's retry budget in
-- robots_fails:<origin>: below the budget the verdict is D, held for a
-- backoff, after which the next URL of the host tries again; at the budget it
-- becomes U for the error TTL, and the host's URLs end at once.
-- Then the lease: after R, A or D it goes back to the front of its host queue
-- (its page is fetched in a later slot, spaced from this robots.txt request
-- like any two requests to the host; after D, not before the backoff ends);
-- after U or B (blocked address) the caller keeps it and completes it with
-- an error.
-- Safe to send twice: the lock token, new for each fetch, is its call id
-- (done:<token>, see _lib.lua).
-- ARGV: base, lease_id, host, origin, verdict (kind + body or detail), ttl_ms,
--       crawl_delay_ms ('' = keep the host's, '-1' = clear it), capped (0/1),
--       lock_token, fail (0/1), budget, backoff_base_ms, backoff_max_ms,
--       jitter (0..1: where in [step/2, step] the backoff falls)
-- Returns {1 given back | 0 stale lease | 2 lease kept, the verdict stored, its TTL}.
local base = ARGV[1]
local id = ARGV[2]
local host = ARGV[3]
local origin = ARGV[4]
local verdict = ARGV[5]
local ttl = tonumber(ARGV[6])
local now = now_ms()
local hk = base .. 'h:' .. host

-- A failure count lives a day from its last failure; a fetch that is not a
-- failure, or the budget spent, deletes it. It must outlast the hold and the
-- next try: kept robots_error_ttl, as it once was, a TTL shorter than one
-- timed-out fetch let it expire between two tries, and the budget was never spent
-- (robots.txt fetched again forever, the URL never ending).
local FAILS_KEPT_MS = 86400000

-- The verdict for every worker, the failure count, the lock, the Crawl-delay.
-- Returns the verdict stored, the hold (ms) after a failure, and the TTL.
local function store_verdict()
  local fails_key = base .. 'robots_fails:' .. origin
  local hold = 0
  if ARGV[10] == '1' and string.sub(verdict, 1, 1) == 'D' then
    local fails = redis.call('INCR', fails_key)
    redis.call('PEXPIRE', fails_key, math.max(ttl, FAILS_KEPT_MS))
    if fails >= tonumber(ARGV[11]) then
      verdict = 'U' .. string.sub(verdict, 2)
      redis.call('DEL', fails_key)
    else
      local step = math.min(tonumber(ARGV[13]), tonumber(ARGV[12]) * 2 ^ (fails - 1))
      hold = math.floor(step / 2 + step / 2 * tonumber(ARGV[14]))
      ttl = math.max(1, hold)
    end
  elseif string.sub(verdict, 1, 1) ~= 'U' then
    redis.call('DEL', fails_key)
  end
  redis.call('SET', base .. 'robots:' .. origin, verdict, 'PX', ttl)
  local lock = base .. 'robots_lock:' .. origin
  if redis.call('GET', lock) == ARGV[9] then redis.call('DEL', lock) end
  local crawl_delay = ARGV[7]
  if crawl_delay == '-1' then
    redis.call('HDEL', hk, 'crawl_delay')
  elseif crawl_delay ~= '' then
    redis.call('HSET', hk, 'crawl_delay', crawl_delay)
  end
  if ARGV[8] == '1' then redis.call('HINCRBY', KEYS[7], 'robots_capped', 1) end
  return verdict, hold, ttl
end

-- Sent twice (the lock token names the fetch): the verdict, the failure
-- count, the Crawl-delay and the tally stay as the first run left them; only
-- the lease part runs again, and finds the lease given back already.
local hold
local first = reply_of_first_run(base, ARGV[9])
if first then
  local kind, first_hold, first_ttl = string.match(first, '^(.)|(%d+)|(%d+)$')
  verdict, hold, ttl = kind .. string.sub(verdict, 2), tonumber(first_hold), tonumber(first_ttl)
else
  verdict, hold, ttl = store_verdict()
  keep_reply(base, ARGV[9], string.format('%s|%d|%d', string.sub(verdict, 1, 1), hold, ttl))
end

local data = redis.call('HGET', KEYS[4], id)
if not data then return {0, verdict, ttl} end
local kind = string.sub(verdict, 1, 1)
if kind == 'U' or kind == 'B' then return {2, verdict, ttl} end
local lhost = split_lease(data)
redis.call('HDEL', KEYS[4], id)
redis.call('ZREM', KEYS[3], id)
-- The host's next request waits its delay (or the Crawl-delay just learnt)
-- from now, the end of the robots.txt fetch, not from the claim: that fetch
-- is a host's first request, on a new connection, and may have reached the
-- server late; counted from its end, the next start can never come too soon.
-- After a failed fetch it waits the backoff too, and the host shows as held.
local delay = math.max(hnum(hk, 'delay', 0), hnum(hk, 'crawl_delay', 0), hold)
if lhost == host and now + delay > hnum(hk, 'next', 0) then
  redis.call('HSET', hk, 'next', string.format('%d', now + delay))
end
if hold > 0 then hold_host(base, host, now + delay, 'robots') end
push_lease(base, data, false)
redis.call('HINCRBY', KEYS[7], 'leased', -1)
redis.call('HINCRBY', KEYS[7], 'queued', 1)
release_slot(base, lhost, now)
return {1, verdict, ttl}
