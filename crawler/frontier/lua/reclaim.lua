-- reclaim: return expired leases (their worker died or stalled) to the front
-- of their host queues, counting the attempt; then compact idle hosts. Any
-- worker may run it, now and then.
-- Compaction: a host with nothing queued (in any band), leased or delayed,
-- whose politeness window has passed, keeps only what must outlive it: its
-- page count (when a per-host cap counts it), its Crawl-delay, the names
-- seen on it (ip mode), and a trap throttle (tcap, trap, ttold); its band flags go. Everything else is recomputed if
-- it comes back: a next-allowed time in the past allows what a missing one
-- allows.
-- ARGV: base, max_leases, max_compactions
-- Returns {leases reclaimed, hosts compacted}.
local base = ARGV[1]
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local data = redis.call('HGET', KEYS[4], id)
  redis.call('ZREM', KEYS[3], id)
  if data then
    redis.call('HDEL', KEYS[4], id)
    local host = push_lease(base, data, true)
    redis.call('HINCRBY', KEYS[7], 'leased', -1)
    redis.call('HINCRBY', KEYS[7], 'queued', 1)
    release_slot(base, host, now)
  end
end

local compacted = 0
local idle = base .. 'idle'
for _, host in ipairs(redis.call('ZRANGEBYSCORE', idle, '-inf', now, 'LIMIT', 0,
                                 tonumber(ARGV[3]))) do
  redis.call('ZREM', idle, host)
  local hk = base .. 'h:' .. host
  local f = redis.call('HMGET', hk, 'inflight', 'dl', 'next', 'pages', 'crawl_delay', 'names',
                       'b1', 'b2', 'tcap', 'trap', 'ttold', unpack(INLINE))
  if queued_urls(base, host, f[7], f[8], inline_count(f, 12)) == 0 and tonumber(f[1] or 0) == 0
      and tonumber(f[2] or 0) == 0 then
    if tonumber(f[3] or 0) > now then
      redis.call('ZADD', idle, f[3], host)  -- not yet: its window is still open
    else
      redis.call('DEL', hk, base .. 'px:' .. host)
      local keep = {}
      for i, field in ipairs({'pages', 'crawl_delay', 'names'}) do
        if f[i + 3] then keep[#keep + 1] = field; keep[#keep + 1] = f[i + 3] end
      end
      if f[9] then  -- a throttled host stays throttled (lua/_traps.lua)
        keep[#keep + 1] = 'tcap'; keep[#keep + 1] = f[9]
        keep[#keep + 1] = 'trap'; keep[#keep + 1] = f[10] or ''
        keep[#keep + 1] = 'hold'; keep[#keep + 1] = 'trap: ' .. (f[10] or '')
        if f[11] then keep[#keep + 1] = 'ttold'; keep[#keep + 1] = f[11] end
      end
      if #keep > 0 then redis.call('HSET', hk, unpack(keep)) end
      redis.call('ZREM', KEYS[1], host)
      -- A trap stays listed (its listing ends by itself): crawl status tells why
      -- the host stopped short.
      if not f[9] then redis.call('ZREM', base .. 'held', host) end
      compacted = compacted + 1
    end
  end
end
return {#ids, compacted}
