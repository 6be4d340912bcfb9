-- Shared helpers, prepended to every frontier script when it is loaded.
-- KEYS (the same for every script, see crawler/keys.py ShardKeys.script_keys):
--   1 ready  2 delayed  3 leases  4 lease  5 seq  6 results  7 stats
-- ARGV[1] is the shard's key prefix; per-host keys are built from it and
-- share the shard's hash tag.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function hnum(key, field, default)
  local v = redis.call('HGET', key, field)
  if v then return tonumber(v) end
  return default
end

-- A host is in the ready set exactly while it has queued URLs and a free
-- concurrency slot; its score is the earliest time its next request may start.
local function refresh_ready(base, host, now)
  local hk = base .. 'h:' .. host
  local inflight = hnum(hk, 'inflight', 0)
  local limit = hnum(hk, 'limit', 1)
  if inflight < limit and redis.call('LLEN', base .. 'q:' .. host) > 0 then
    local nxt = hnum(hk, 'next', 0)
    if nxt < now then nxt = now end
    redis.call('ZADD', KEYS[1], string.format('%d', nxt), host)
  else
    redis.call('ZREM', KEYS[1], host)
  end
end

local function release_slot(base, host, now)
  local hk = base .. 'h:' .. host
  if redis.call('HINCRBY', hk, 'inflight', -1) < 0 then
    redis.call('HSET', hk, 'inflight', 0)
  end
  refresh_ready(base, host, now)
end

-- Lease record: host|worker|attempts|depth|url (the url may hold '|').
local function split_lease(data)
  local host, worker, attempts, depth, url =
    string.match(data, '^([^|]*)|([^|]*)|(%d+)|(%d+)|(.*)$')
  return host, worker, tonumber(attempts), tonumber(depth), url
end

local function entry(attempts, depth, url)
  return string.format('%d|%d|', attempts, depth) .. url
end
