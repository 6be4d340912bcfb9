-- complete: finish a lease the caller still holds: append its result to the
-- stream and free the host slot. A stale lease id (completed already, or
-- reclaimed after expiry) changes nothing, so every URL has one result.
-- ARGV: base, lease_id, result_json, is_error (0/1), not_before_ms (host's
--       next start no earlier than now + this; 0 = no change), stream_maxlen
--       (0 = unbounded; only acknowledged results are ever deleted), no_request (0/1, optional: the lease made no request,
--       e.g. robots.txt disallowed its URL, so its claim's delay is given back
--       unless another claim or a backoff moved the host's next time since),
--       tally (optional: a stats field counted once per result, e.g. s:2xx or
--       e:timeout, for crawl status),
--       revisit_field, revisit_state (optional, recrawl = true: the URL's state
--       in v:<host>, written with its result and only then, so a visit counts once;
--       with revisit_adaptive, its interval: the URL is due again that many
--       seconds from now, scheduled in due:<host> and due_hosts),
--       simhash, distance, window, trap_pages, weak (optional, near_duplicates =
--       true: the page's SimHash, 16 hex; the record's "near_duplicate_of":null
--       becomes the URL of a page of its host within distance bits, among its
--       last window, not counting the bits set in weak (16 hex, optional: the
--       SimHash's bits one word could flip); trap_pages < 0: never throttle;
--       lua/_traps.lua)
-- An error result (is_error, tally e:<type>) files its URL in failed (URL ->
-- type|host|depth|hops|retries, at most FAILED_KEPT URLs) for crawl retry
-- (retry_errors.lua); any other result takes it out. A URL crawl retry
-- queued (marked '*' there) has its retry number added to its record as
-- "retry", so the new result is told from the old one the stream keeps.
-- Returns 1 when the result was recorded (2: and the stream is past
-- stream_maxlen with nothing acknowledged to delete), 0 for a stale lease.
local base = ARGV[1]
local id = ARGV[2]
local data = redis.call('HGET', KEYS[4], id)
if not data then return 0 end
local now = now_ms()
local host, _, attempts, depth, hops, url, claimed, prev, mine = split_lease(data)
redis.call('HDEL', KEYS[4], id)
local FAILED_KEPT = 100000  -- crawler/store/keys.py FAILED_KEPT
local record = ARGV[3]
local tally = ARGV[8] or ''
local fk = base .. 'failed'
local filed = redis.call('HGET', fk, url)
local retry = 0
if filed and string.sub(filed, 1, 2) == '*|' then  -- queued again by crawl retry
  retry = tonumber(string.match(filed, '(%d+)$'))
  record = string.sub(record, 1, -2) .. ',"retry":' .. retry .. '}'
end
if ARGV[4] == '1' and string.sub(tally, 1, 2) == 'e:' then
  if filed or redis.call('HLEN', fk) < FAILED_KEPT then
    redis.call('HSET', fk, url, string.format('%s|%s|%d|%d|%d', string.sub(tally, 3), host,
      depth, hops, retry))
  else
    redis.call('HINCRBY', KEYS[7], 'failed_unkept', 1)
  end
elseif filed then
  redis.call('HDEL', fk, url)  -- its last result is no longer an error
end
-- The URL's earlier attempts' time (retry.lua) went into this result: forgotten.
if attempts > 0 then redis.call('HDEL', base .. 'attempt_ms', url) end
redis.call('ZREM', KEYS[3], id)
if ARGV[11] and ARGV[11] ~= '' then
  -- Near-duplicates: looked up and filed here, with the result, so a page is
  -- filed once and its record names the earlier page (lua/_traps.lua).
  local dup = near_duplicate(base, host, ARGV[11], url, tonumber(ARGV[12]), tonumber(ARGV[13]),
    ARGV[15])
  if dup then
    local at = string.find(record, '"near_duplicate_of":null', 1, true)
    if at then
      record = string.sub(record, 1, at + 19) .. cjson.encode(dup) .. string.sub(record, at + 24)
    end
    redis.call('HINCRBY', KEYS[7], 'near_duplicates', 1)
  end
  judge_window(base, host, 'ndn', 'ndd', 1, dup and 1 or 0, tonumber(ARGV[14]),
    'pages near-duplicates', now)
end
redis.call('XADD', KEYS[6], '*', 'r', record)
-- results_maxlen bounds the stream, but only by deleting what every consumer
-- group has acknowledged: a result nobody has taken out is never lost. Past
-- the bound with nothing to delete, stats counts it and crawl status warns.
local maxlen = tonumber(ARGV[6])
local kept_over_maxlen = false
if maxlen > 0 and redis.call('XLEN', KEYS[6]) > maxlen then
  local low = acknowledged_until(KEYS[6])
  if low then redis.call('XTRIM', KEYS[6], 'MINID', low) end
  if redis.call('XLEN', KEYS[6]) > maxlen then
    redis.call('HINCRBY', KEYS[7], 'results_over_maxlen', 1)
    kept_over_maxlen = true
  end
end
redis.call('HINCRBY', KEYS[7], 'leased', -1)
redis.call('HINCRBY', KEYS[7], 'done', 1)
if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[7], 'errors', 1) end
if ARGV[8] and ARGV[8] ~= '' then redis.call('HINCRBY', KEYS[7], ARGV[8], 1) end
local hk = base .. 'h:' .. host
if ARGV[7] == '1' then
  -- Ours was the last claim and nothing pushed next past what it set.
  if hnum(hk, 'last', -1) == claimed and hnum(hk, 'next', 0) <= mine then
    redis.call('HSET', hk, 'next', string.format('%d', prev))
  end
end
local after = tonumber(ARGV[5])
if after > 0 then
  local nxt = math.max(hnum(hk, 'next', 0), now + after)
  redis.call('HSET', hk, 'next', string.format('%d', nxt))
end
if ARGV[9] and ARGV[9] ~= '' then
  local vk = base .. 'v:' .. host
  local state = fetched_now(ARGV[10], now)
  -- A sitemap read while this page was fetched may have listed a newer lastmod.
  local _, old = split_state(redis.call('HGET', vk, ARGV[9]) or '')
  if old[5] and old[5] ~= '0' then state = with_lastmod(state, old[5]) end
  redis.call('HSET', vk, ARGV[9], state)
  redis.call('SADD', base .. 'recrawl_hosts', host)
  -- The next revisit is scheduled here, with the result, and only then: a
  -- retried or reclaimed lease schedules nothing.
  local _, numbers = split_state(state)
  local interval = tonumber(numbers[6] or 0)
  local dk = base .. 'due:' .. host
  if interval > 0 then
    local due = math.floor(now / 1000) + interval
    redis.call('ZADD', dk, due, ARGV[9])
    redis.call('ZADD', base .. 'due_hosts', 'LT', due, host)
  else
    redis.call('ZREM', dk, ARGV[9])  -- revisit_adaptive turned off: no schedule left
  end
end
release_slot(base, host, now)
-- 2: recorded, but the stream is past results_maxlen (the worker warns).
if kept_over_maxlen then return 2 end
return 1
