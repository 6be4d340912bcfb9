-- claim: lease up to N URLs from hosts whose next-allowed time has come.
-- The claim is the request's start as far as politeness goes: it sets the
-- host's next-allowed time to now + max(delay, crawl_delay) (+ slack) and
-- takes a slot.
-- A host gives one URL per pass, from its highest priority band holding one;
-- with no delay and free slots it may give more in later passes of the same
-- call, never past its concurrency limit. Which host goes first does not
-- depend on bands: hosts take turns by their next-allowed time alone.
-- Idempotent: a claim carries a request id, and the same worker repeating
-- the same request (its reply was lost in a reconnect, and the client sent
-- it again) gets the leases of the first run back instead of new ones, which
-- would hold their hosts' slots until they expired.
-- Each lease comes with what its worker needs of the shard and would
-- otherwise fetch with a round trip of its own: the time its URL's earlier
-- attempts took (retry.lua wrote it; complete.lua deletes it) and, with
-- recrawl = true, its URL's revisit state from its last visit.
-- ARGV: base, n, lease_ms, worker, slack_ms (added to a delay > 0; the worker
--       starts each request within it or gives the lease back), request_id
--       ('' = not idempotent), recrawl ('1': return each URL's revisit state),
--       with_cookies ('1': cookies = true, optional)
-- Returns {wait_ms, queued, leased, (lease_id, host, attempts, depth, hops, url, band,
-- spaced, earlier_ms, revisit_state, jar)...} where wait_ms is how long until
-- something here may become claimable (-1: nothing queued or leased in this shard);
-- spaced is 1 when the claim spaced the host's next request (its delay or
-- Crawl-delay > 0, slack added): then the worker must start within the slack or
-- give it back; earlier_ms and revisit_state are '' when there is none; jar is the
-- host's cookie jar with cookies = true ('' otherwise; see _lib.lua cookie_jar):
-- it rides with the lease, no round trip of its own.
local base = ARGV[1]
local n = tonumber(ARGV[2])
local lease_ms = tonumber(ARGV[3])
local worker = ARGV[4]
local slack = tonumber(ARGV[5])
local request_id = ARGV[6]
local recrawl = ARGV[7] == '1'
local with_cookies = ARGV[8] == '1'
local now = now_ms()
local LEASE_FIELDS = 11

-- A lease's reply fields after its queue entry's: earlier_ms, revisit_state, jar.
local function lease_extras(host, attempts, url)
  local earlier = ''
  if attempts > 0 then earlier = redis.call('HGET', base .. 'attempt_ms', url) or '' end
  local state = ''
  if recrawl then
    state = redis.call('HGET', base .. 'v:' .. host, revisit_field(host, url)) or ''
  end
  local jar = ''
  if with_cookies then jar = cookie_jar(base, host, now) end
  return earlier, state, jar
end

-- 0. A repeated request: answer with the leases its first run made.
local request_key = base .. 'claimreq:' .. worker
if request_id ~= '' then
  local previous = redis.call('GET', request_key)
  if previous and string.sub(previous, 1, #request_id + 1) == request_id .. '|' then
    local result = {0, hnum(KEYS[7], 'queued', 0), hnum(KEYS[7], 'leased', 0)}
    for id in string.gmatch(string.sub(previous, #request_id + 2), '[^,]+') do
      local data = redis.call('HGET', KEYS[4], id)
      if data then
        local host, _, attempts, depth, hops, url, claimed, _, mine, band = split_lease(data)
        local spaced = mine > claimed and 1 or 0
        local earlier, state, jar = lease_extras(host, attempts, url)
        for _, v in ipairs({id, host, attempts, depth, hops, url, band, spaced, earlier,
                            state, jar}) do
          result[#result + 1] = v
        end
      end
    end
    return result
  end
end

-- 1. Holds that have ended leave the held set; retries whose not-before time
-- has passed go back to their host queues.
redis.call('ZREMRANGEBYSCORE', base .. 'held', '-inf', now)
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 500)
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[2], member)
  local host, attempts, depth, hops, band, url = split_delayed(member)
  redis.call('HINCRBY', base .. 'h:' .. host, 'dl', -1)
  push(base, host, attempts, depth, hops, url, true, band)
  refresh_ready(base, host, now)
end

-- 2. A paused or stopped crawl claims nothing; a capped shard claims only up
-- to its allotment of done + leased, and nothing once its errors reach their
-- allotment (crawler.control).
local ctl = redis.call('HMGET', base .. 'ctl', 'state', 'cap', 'errcap')
if ctl[1] then
  return {1000, hnum(KEYS[7], 'queued', 0), hnum(KEYS[7], 'leased', 0)}
end
local capped = false
if ctl[2] then
  local room = tonumber(ctl[2]) - hnum(KEYS[7], 'done', 0) - hnum(KEYS[7], 'leased', 0)
  if room < n then
    n = math.max(room, 0)
    capped = n == 0
  end
end
if ctl[3] and hnum(KEYS[7], 'errors', 0) >= tonumber(ctl[3]) then
  n = 0
  capped = true
end

-- 3. Lease from ready hosts, one URL per host per pass: from its highest
-- band flagged (b2, b1) that holds one, else from its normal queue (its
-- inline URLs, or its list). ``f``: the host state's HMGET below.
local function pop_highest(host, f)
  local b1, b2 = f[4], f[5]
  if b2 then
    local e = redis.call('LPOP', queue_key(base, host, 2))
    if e then return e, 2 end
  end
  if b1 then
    local e = redis.call('LPOP', queue_key(base, host, 1))
    if e then return e, 1 end
  end
  return dequeue(base, host, f, 6), 0
end

local out = {}
local got = 0
while got < n do
  local hosts = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, n - got)
  if #hosts == 0 then break end
  for _, host in ipairs(hosts) do
    local hk = base .. 'h:' .. host
    -- A newly published policy may have raised the delay or lowered the
    -- limit since this host was scored; then it only gets a new score.
    local limit, delay = host_policy(base, host)
    local f = redis.call('HMGET', hk, 'next', 'inflight', 'crawl_delay', 'b1', 'b2',
      unpack(INLINE))
    local prev = tonumber(f[1] or 0)
    local e, band = false, 0
    if prev <= now and tonumber(f[2] or 0) < limit then
      e, band = pop_highest(host, f)
    end
    if e then
      local attempts, depth, hops, url = parse_entry(base, host, e)
      local id = redis.call('INCR', KEYS[5])
      delay = math.max(delay, tonumber(f[3] or 0))
      if delay > 0 then delay = delay + slack end
      redis.call('HSET', KEYS[4], id, host .. '|' .. worker .. '|' ..
        string.format('%d|%d|%d|%d|%d|', now, prev, now + delay, attempts, depth)
        .. (band > 0 and hops_band(hops, band) or hops) .. '|' .. url)
      redis.call('ZADD', KEYS[3], string.format('%d', now + lease_ms), id)
      redis.call('HINCRBY', hk, 'inflight', 1)
      redis.call('HSET', hk, 'next', string.format('%d', now + delay),
        'last', string.format('%d', now))
      got = got + 1
      local k = #out
      out[k + 1], out[k + 2], out[k + 3], out[k + 4] = tostring(id), host, attempts, depth
      out[k + 5], out[k + 6], out[k + 7], out[k + 8] = hops, url, band, delay > 0 and 1 or 0
      out[k + 9], out[k + 10], out[k + 11] = lease_extras(host, attempts, url)
    end
    -- The host's queues just emptied: its prefix table has no entry left to name.
    if refresh_ready(base, host, now) == 0 and e then
      redis.call('DEL', base .. 'px:' .. host)
    end
  end
end
if got > 0 then
  redis.call('HINCRBY', KEYS[7], 'queued', -got)
  redis.call('HINCRBY', KEYS[7], 'leased', got)
  if request_id ~= '' then
    local ids = {}
    for i = 1, #out, LEASE_FIELDS do ids[#ids + 1] = out[i] end
    redis.call('SET', request_key, request_id .. '|' .. table.concat(ids, ','), 'PX', lease_ms)
  end
end

local queued = hnum(KEYS[7], 'queued', 0)
local leased = hnum(KEYS[7], 'leased', 0)
local wait = -1
if got > 0 then
  wait = 0
else
  local function until_first(key)
    local first = redis.call('ZRANGE', KEYS[key], 0, 0, 'WITHSCORES')
    if #first == 2 then
      local w = tonumber(first[2]) - now
      if w < 0 then w = 0 end
      if wait < 0 or w < wait then wait = w end
    end
  end
  until_first(1)
  until_first(2)
  until_first(3)
  if wait < 0 and (queued > 0 or leased > 0) then wait = 1000 end
  if capped and queued > 0 then wait = 1000 end
end
local result = {wait, queued, leased}
for _, v in ipairs(out) do result[#result + 1] = v end
return result
