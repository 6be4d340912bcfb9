-- robots_peek: a host's stored robots.txt verdict, or else the lock to fetch it, in one step.
-- Sent apart, a GET and a PTTL could see a verdict and then its expiry (-2), and
-- a read and a SET NX let another worker store its verdict and let go in between,
-- so that this one fetched robots.txt again. Within a script the server's clock
-- stands still: a verdict found has a PTTL >= 0 (or -1, none).
-- ARGV: base, verdict key, lock key, token, lock_ms (0: only read, take no lock).
-- Returns {1, verdict, pttl_ms}; {2} when the caller holds the lock (sent twice,
-- the second run finds the caller's own token: still {2}); {0} when another worker
-- holds it, or nothing is stored and lock_ms is 0.
local raw = redis.call('GET', ARGV[2])
if raw then return {1, raw, redis.call('PTTL', ARGV[2])} end
if tonumber(ARGV[5]) > 0 then
  if redis.call('SET', ARGV[3], ARGV[4], 'NX', 'PX', ARGV[5]) or
      redis.call('GET', ARGV[3]) == ARGV[4] then
    return {2}
  end
end
return {0}
