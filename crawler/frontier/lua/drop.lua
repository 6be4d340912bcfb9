-- drop: discard the queued and delayed URLs of a stopped crawl's hosts
-- (`crawl stop --drop`). Leases in flight are left to finish: their URLs end
-- with a result as usual. The caller finds the hosts (SCAN of h:*, for a
-- small host's inline URLs, and q:*, q1:*, q2:*)
-- and sends them in batches, a host maybe more than once; every band of a host
-- is dropped. Hosts emptied here go idle and are compacted by reclaim.
-- A dropped URL queued for a revisit (recrawl = true: its state in v:<host>
-- marked '*') is unmarked, in the same call, so that crawl recrawl and the
-- adaptive schedule can queue it again (unmark_revisit); a host without
-- revisit state costs one EXISTS more.
-- ARGV: base, drop_delayed (1 on the first batch), host...
-- Returns the number of URLs dropped.
local base = ARGV[1]
local now = now_ms()
local dropped = 0
if ARGV[2] == '1' then
  for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    local host, _, _, _, _, url = split_delayed(member)
    redis.call('HINCRBY', base .. 'h:' .. host, 'dl', -1)
    unmark_revisit(base, host, url, now)
    dropped = dropped + 1
  end
  redis.call('DEL', KEYS[2])
end
for i = 3, #ARGV do
  local host = ARGV[i]
  local revisits = redis.call('EXISTS', base .. 'v:' .. host) == 1
  local hk = base .. 'h:' .. host
  local inline = redis.call('HMGET', hk, unpack(INLINE))
  local k = inline_count(inline, 1)
  if k > 0 then
    for j = 1, revisits and k or 0 do
      local _, _, _, url = parse_entry(base, host, inline[j])
      unmark_revisit(base, host, url, now)
    end
    redis.call('HDEL', hk, unpack(INLINE, 1, k))
    dropped = dropped + k
  end
  for band = 0, RAISED_BANDS do
    local queue = queue_key(base, host, band)
    if revisits then  -- before the queue and its prefix table go: they name the URLs
      for _, e in ipairs(redis.call('LRANGE', queue, 0, -1)) do
        local _, _, _, url = parse_entry(base, host, e)
        unmark_revisit(base, host, url, now)
      end
    end
    dropped = dropped + redis.call('LLEN', queue)
    redis.call('DEL', queue)
  end
  redis.call('DEL', base .. 'px:' .. host)
  refresh_ready(base, host, now)  -- clears the band flags: their bands are empty
end
if dropped > 0 then
  redis.call('HINCRBY', KEYS[7], 'queued', -dropped)
  redis.call('HINCRBY', KEYS[7], 'dropped', dropped)
end
return dropped
