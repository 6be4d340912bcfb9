-- add: enqueue the URLs of one shard that were never seen before.
-- ARGV: base, max_pages_per_host (0 = no cap), nhosts,
--       then nhosts x (host, limit, delay_ms, names): the adder's policy,
--       kept only for hosts seen first and used while no policy table is
--       published; names (space-separated, politeness_key = "ip" only) are
--       host names seen on this address, whose overrides decide its policy,
--       then groups of one host's URLs at one depth and band: host, count,
--       depth, hops (the redirects that led to them), band (0 normal, 1 high,
--       2 top: crawler/pages/priority.py), then count x (bucket_hex, fingerprint,
--       url, cut: the length of the URL's prefix).
-- A host's new URLs go to its queue (of their band) in one RPUSH, and a
-- prefix is looked up once a call: most URLs of a call share their host and
-- their directory. A URL seen before stays where it is, whatever its band.
-- Returns {added, already_seen, over_host_cap}.
local base = ARGV[1]
local max_pages = tonumber(ARGV[2])
local nhosts = tonumber(ARGV[3])
local now = now_ms()
local i = 4
local NAMES_KEPT = 32  -- names of one address whose overrides count (more: throttled all the same)
for _ = 1, nhosts do
  local hk = base .. 'h:' .. ARGV[i]
  redis.call('HSETNX', hk, 'limit', ARGV[i + 1])
  redis.call('HSETNX', hk, 'delay', ARGV[i + 2])
  if ARGV[i + 3] ~= '' then
    local known = redis.call('HGET', hk, 'names') or ''
    local count, changed = select(2, string.gsub(known, '%S+', '')), false
    for name in string.gmatch(ARGV[i + 3], '%S+') do
      if count < NAMES_KEPT and not string.find(' ' .. known .. ' ', ' ' .. name .. ' ', 1, true) then
        known = (known == '') and name or (known .. ' ' .. name)
        count, changed = count + 1, true
      end
    end
    -- A new name may carry a stricter override: resolve the address again.
    if changed then redis.call('HSET', hk, 'names', known, 'pv', '') end
  end
  i = i + 4
end
local added, seen, capped = 0, 0, 0
local known_prefixes = {}  -- prefix -> id, within this call (one host's group at a time)
while i <= #ARGV do
  local host, count, depth, hops = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]),
    tonumber(ARGV[i + 3])
  local band = math.max(0, math.min(RAISED_BANDS, tonumber(ARGV[i + 4])))
  i = i + 5
  local hk = base .. 'h:' .. host
  local pages = max_pages > 0 and hnum(hk, 'pages', 0) or 0
  local new, prefixes = {}, {}  -- argument index of each new URL; its prefix
  for _ = 1, count do
    if max_pages > 0 and pages >= max_pages then
      -- Over the per-host cap: not marked seen, so raising the cap later works.
      capped = capped + 1
    elseif redis.call('SADD', base .. 'seen:' .. ARGV[i], ARGV[i + 1]) == 1 then
      new[#new + 1] = i + 2
      prefixes[#prefixes + 1] = string.sub(ARGV[i + 2], 1, tonumber(ARGV[i + 3]))
      pages = pages + 1
    else
      seen = seen + 1
    end
    i = i + 4
  end
  local entries = {}
  if #new > 0 then
    prefix_ids(base, host, prefixes, known_prefixes)
    local head = header(0, depth, hops)
    for j, at in ipairs(new) do
      local url, prefix = ARGV[at], prefixes[j]
      local id = known_prefixes[prefix]
      entries[j] = id == 0 and plain(head, host, url)
        or (head .. string.char(id) .. string.sub(url, #prefix + 1))
    end
  end
  if #entries > 0 then
    local length
    local queue = queue_key(base, host, band)
    for start = 1, #entries, 1000 do  -- unpack has a stack limit
      length = redis.call('RPUSH', queue, unpack(entries, start, math.min(start + 999, #entries)))
    end
    if band > 0 then redis.call('HSET', hk, BAND_FLAGS[band], 1) end
    if max_pages > 0 then redis.call('HINCRBY', hk, 'pages', #entries) end
    added = added + #entries
    -- Only a queue that was empty can make its host ready (with bands: one
    -- that held URLs in another band is ready already, and stays so).
    if length == #entries then refresh_ready(base, host, now) end
  end
  known_prefixes = {}
end
if added > 0 then
  redis.call('HINCRBY', KEYS[7], 'queued', added)
  redis.call('HINCRBY', KEYS[7], 'seen', added)
end
-- A big call (crawl seed sends 100 URLs) leaves ~70 KB of Lua garbage. Left to
-- the server's GC step every 50 scripts, that garbage came back as one pause of
-- 8-10 ms inside some unlucky call; collected here, with a live heap of a few
-- hundred KB, it costs tens of µs on a call of under a millisecond. Small calls
-- (a page's links) leave little and skip it: the crawl's hot path pays nothing.
if added + seen + capped >= 100 then collectgarbage('collect') end
return {added, seen, capped}
