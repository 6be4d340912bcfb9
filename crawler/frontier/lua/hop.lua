-- hop: a robots.txt fetch redirected to another host takes a turn of that
-- host's politeness before its request, as a claim does, without a URL: the
-- host's next-allowed time must have come and a slot be free; then its next
-- request waits max(delay, crawl_delay) (+ slack) from now. No slot is held
-- (nothing would free it if the worker died mid-hop): the hop is spaced from
-- the host's other requests, but not counted in its concurrency.
-- Safe to send twice: a turn taken is kept under its call id (done:<id>, see
-- _lib.lua), and a second run answers "taken" again without taking another.
-- ARGV: base, host, limit, delay_ms (the caller's policy, kept only for a host
--       seen first, as add.lua does), slack_ms, call id (new for each try)
-- Returns 0 when the turn is taken (send now), else ms to wait before asking again.
local base = ARGV[1]
local host = ARGV[2]
if reply_of_first_run(base, ARGV[6]) then return 0 end
local hk = base .. 'h:' .. host
local now = now_ms()
redis.call('HSETNX', hk, 'limit', ARGV[3])
redis.call('HSETNX', hk, 'delay', ARGV[4])
local limit, delay = host_policy(base, host)
local f = redis.call('HMGET', hk, 'next', 'inflight', 'crawl_delay')
local nxt = tonumber(f[1] or 0)
if nxt > now then return nxt - now end
if tonumber(f[2] or 0) >= limit then return 100 end  -- busy: no time to predict, look again soon
delay = math.max(delay, tonumber(f[3] or 0))
if delay > 0 then delay = delay + tonumber(ARGV[5]) end
redis.call('HSET', hk, 'next', string.format('%d', now + delay), 'last', string.format('%d', now))
-- A host seen only through this hop goes idle, and reclaim compacts it later.
refresh_ready(base, host, now)
keep_reply(base, ARGV[6], '0')
return 0
