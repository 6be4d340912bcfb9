-- add: enqueue the URLs of one shard that were never seen before.
-- ARGV: base, max_pages_per_host (0 = no cap), trap_query_budget (0 = none),
--       trap_max_params (0 = none), trap_host_pages (-1 = never throttle), nhosts,
--       then nhosts x (host, limit, delay_ms, names): the adder's policy,
--       kept only for hosts seen first and used while no policy table is
--       published; names (space-separated, politeness_key = "ip" only) are
--       host names seen on this address, whose overrides decide its policy,
--       then groups of one host's URLs at one depth and band: host, count,
--       depth, hops (the redirects that led to them), band (0 normal, 1 high,
--       2 top: crawler/pages/priority.py), then count x (bucket_hex, fingerprint,
--       url, cut: the length of the URL's prefix).
-- A host's new URLs go to its queue (of their band) in one RPUSH (a small
-- host's inline in its host state: lua/_lib.lua ``enqueue``), and a
-- prefix is looked up once a call: most URLs of a call share their host and
-- their directory. A URL seen before stays where it is, whatever its band.
-- Traps (lua/_traps.lua): a path's new URLs with a query string count in
-- tp:<bucket> (the first) and tq:<host>; at trap_query_budget the next one gets a `trap` result (once)
-- and later ones are dropped unmarked. A host whose recent new URLs with a
-- query were mostly over that budget or trap_max_params is throttled; once
-- its budget (tcap) is spent, the first URL it cannot queue gets a `trap`
-- result (once: ttold).
-- Returns {added, already_seen, over_host_cap} (a throttled host's cap too).
local base = ARGV[1]
local max_pages = tonumber(ARGV[2])
local query_budget, max_params, trap_pages = tonumber(ARGV[3]), tonumber(ARGV[4]),
  tonumber(ARGV[5])
local nhosts = tonumber(ARGV[6])
local now = now_ms()
local i = 7
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
local added, seen, capped, trapped = 0, 0, 0, 0
local known_prefixes = {}  -- prefix -> id, within this call (one host's group at a time)
while i <= #ARGV do
  local host, count, depth, hops = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]),
    tonumber(ARGV[i + 3])
  local band = math.max(0, math.min(RAISED_BANDS, tonumber(ARGV[i + 4])))
  i = i + 5
  local hk = base .. 'h:' .. host
  local pages = 0
  if max_pages > 0 then
    pages = hnum(hk, 'pages', nil)
    if pages == nil then
      -- Counting starts with the cap (a crawl without one keeps no count, a
      -- field less a host): what the host already queued, and has in flight
      -- or waiting for a retry, counts too. Else a seed queued before the cap
      -- was set (crawl seed, then crawl worker --max-pages-per-host) took no
      -- room, and each host got one page over it.
      local f = redis.call('HMGET', hk, 'b1', 'b2', 'inflight', 'dl', unpack(INLINE))
      pages = queued_urls(base, host, f[1], f[2], inline_count(f, 5)) + tonumber(f[3] or 0)
        + tonumber(f[4] or 0)
    end
  end
  local pages_before = pages  -- the count before this group: its queued URLs are added to it
  local state = redis.call('HMGET', hk, 'tcap', 'pq', 'trap', 'ttold')
  local tcap = tonumber(state[1] or -1)  -- >= 0: a throttled host's URLs still to queue
  local told = state[4] ~= false  -- a throttled host's trap record was written
  -- 'pq': the host stored a query prefix once. Until then its URLs' query
  -- prefixes need no lookup (seeding URLs with a query each: 12-14% of
  -- add.lua's time went to looking up prefixes that could not be there).
  -- Only a hint: a prefix table is deleted with the queue, the flag stays.
  local query_table = state[2]
  local new, prefixes, longer = {}, {}, {}  -- argument index of each new URL; its prefixes
  local judged, over, paths, ids = 0, 0, {}, {}  -- new URLs with a query; over a budget;
  -- path counts; each path's names in tp: and tq:<host> (lua/_traps.lua)
  for _ = 1, count do
    local url = ARGV[i + 2]
    local q = (query_budget > 0 or max_params > 0) and string.find(url, '?', 1, true)
    local path, trap = nil, false
    if q then
      path = string.sub(url, 1, math.min(q - 1, TRAP_PATH_CHARS))
      if paths[path] == nil then
        ids[path] = trap_path_id(path)
        paths[path] = trap_path_count(base, host, ids[path], query_budget)
      end
      trap = query_budget > 0 and paths[path] >= query_budget
    end
    if max_pages > 0 and pages >= max_pages then
      -- Over the per-host cap: not marked seen, so raising the cap later works.
      capped = capped + 1
    elseif tcap == 0 then
      -- A throttled host's budget is spent. The first URL it could not queue
      -- gets a result that says why (once a host); later ones are dropped
      -- unmarked, as over a cap.
      if not told and redis.call('SADD', base .. 'seen:' .. ARGV[i], ARGV[i + 1]) == 1 then
        told = true
        redis.call('HSET', hk, 'ttold', 1)
        add_trap_result(KEYS[6], KEYS[7], url, depth, string.format(
          'host %s: throttled as a trap (%s); the %d URLs it could still queue are queued, '
          .. 'later ones are dropped', host, state[3] or '', trap_pages), now)
      else
        capped = capped + 1
      end
    elseif trap and paths[path] > query_budget then
      trapped = trapped + 1  -- told once already (below); not marked seen
    elseif redis.call('SADD', base .. 'seen:' .. ARGV[i], ARGV[i + 1]) == 0 then
      seen = seen + 1
    elseif trap then
      -- The first URL past the path's budget: its one result says why.
      paths[path] = trap_path_counted(base, host, ids[path], paths[path])
      add_trap_result(KEYS[6], KEYS[7], url, depth, string.format(
        'host %s: %d URLs of %s with distinct queries; budget %d', host, query_budget,
        string.match(path, '^%a[%w+.-]*://[^/]*(/.*)$') or path, query_budget), now)
    else
      new[#new + 1] = i + 2
      prefixes[#new] = string.sub(url, 1, tonumber(ARGV[i + 3]))
      local at = q or string.find(url, '?', 1, true)
      longer[#new] = at and query_prefix(url, at)
      pages = pages + 1
      if tcap > 0 then tcap = tcap - 1 end
      if q then
        paths[path] = trap_path_counted(base, host, ids[path], paths[path])
        judged = judged + 1
        if max_params > 0 and select(2, string.gsub(string.sub(url, q + 1), '&', '')) >= max_params
        then over = over + 1 end
      end
    end
    if trap then judged, over = judged + 1, over + 1 end
    i = i + 4
  end
  if tcap >= 0 then redis.call('HSET', hk, 'tcap', tcap) end
  if judged > 0 then
    judge_window(base, host, 'tw', 'to', judged, over, trap_pages,
      'new URLs over the query budget', now)
  end
  local entries = {}
  if #new > 0 then
    -- A URL with a query: its path and first name first, then its directory.
    local queries, dirs = {}, {}
    for j = 1, #new do
      if longer[j] then queries[#queries + 1] = longer[j] end
    end
    if #queries > 0 then
      prefix_ids(base, host, queries, known_prefixes, QUERY_IDS, not query_table)
      if not query_table then
        for _, prefix in ipairs(queries) do
          if known_prefixes[prefix] > 0 then
            redis.call('HSET', hk, 'pq', 1)
            break
          end
        end
      end
    end
    for j = 1, #new do
      if longer[j] and known_prefixes[longer[j]] > 0 then
        prefixes[j] = longer[j]
      else
        dirs[#dirs + 1] = prefixes[j]
      end
    end
    if #dirs > 0 then prefix_ids(base, host, dirs, known_prefixes) end
    local head = header(0, depth, hops)
    for j, at in ipairs(new) do
      local url, prefix = ARGV[at], prefixes[j]
      local id = known_prefixes[prefix]
      entries[j] = id == 0 and plain(head, host, url)
        or (head .. string.char(id) .. string.sub(url, #prefix + 1))
    end
  end
  if #entries > 0 then
    local length = enqueue(base, host, band, entries, false)
    if max_pages > 0 then redis.call('HSET', hk, 'pages', pages_before + #entries) end
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
if trapped > 0 then redis.call('HINCRBY', KEYS[7], 'trapped', trapped) end
-- A full call (ADD_CHUNK, 50 URLs: crawl seed's) leaves ~35 KB of Lua garbage.
-- Left to the server's GC step every 50 scripts, that garbage came back as pauses
-- of 8-10 ms inside unlucky calls (seeding 1M URLs: 114-405 calls over 2 ms, against
-- 23-63 with a collect or a step here). A full collect each call marked the whole
-- live heap (~0.9 MB: every loaded script) each time, ~0.1 ms of a 0.65 ms call. A
-- step of 64 moves the incremental collector on by about 64 KB of allocation's
-- worth, more than a call leaves, so the heap stays bounded (used_memory_lua 0.92 ->
-- 1.04 MB) and no call marks all of it: server time a URL 13.9-15.4 -> 11.5-12.4 µs.
-- Smaller calls (most pages' new links) leave little and skip it.
if added + seen + capped >= 50 then collectgarbage('step', 64) end
return {added, seen, capped}
