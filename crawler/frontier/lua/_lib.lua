-- Shared helpers, prepended to every frontier script when it is loaded.
-- KEYS (the same for every script, see crawler/store/keys.py ShardKeys.script_keys):
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

-- The published politeness table (crawler/frontier/politeness.py writes it): exact
-- host (with port, then without), then the longest domain suffix, then the
-- default. Same precedence as Settings.policy_for.
local function lookup_policy(pk, host)
  local name = host
  if string.sub(host, 1, 1) == '[' then
    name = string.match(host, '^(%[.-%])') or host
  elseif select(2, string.gsub(host, ':', '')) == 1 then
    name = string.match(host, '^([^:]*)')
  end
  local v = redis.call('HGET', pk, 'x:' .. host)
  if not v and name ~= host then v = redis.call('HGET', pk, 'x:' .. name) end
  if v then return v end
  local s = name
  while true do
    local dot = string.find(s, '.', 1, true)
    if not dot then break end
    s = string.sub(s, dot + 1)
    v = redis.call('HGET', pk, 's:' .. s)
    if v then return v end
  end
  return redis.call('HGET', pk, 'd')
end

-- The policy of a politeness key: its own entry in the table; or, when it
-- is a server's address (politeness_key = "ip"), the strictest policy among
-- the host names seen on that address (each name's override, or the
-- default): the fewest requests in flight and the longest delay.
local function resolve_policy(pk, host, names)
  if not names or names == '' then
    local spec = lookup_policy(pk, host)
    if not spec then return nil end
    local limit, delay = string.match(spec, '^(%d+)|(%d+)$')
    return tonumber(limit), tonumber(delay)
  end
  local limit, delay = nil, nil
  for name in string.gmatch(names, '%S+') do
    local spec = lookup_policy(pk, name)
    if spec then
      local l, d = string.match(spec, '^(%d+)|(%d+)$')
      l, d = tonumber(l), tonumber(d)
      if not limit or l < limit then limit = l end
      if not delay or d > delay then delay = d end
    end
  end
  return limit, delay
end

-- The host's concurrency limit and delay (ms). Without a published table,
-- what add.lua stored when the host was first seen. With one, the host is
-- re-resolved whenever the table's version changes (or new names join an
-- address), so changed overrides reach hosts already known; a raised delay
-- counts from the last request start, so no gap is ever shorter than the
-- delay in force.
local policy_version = nil
local function host_policy(base, host)
  local hk = base .. 'h:' .. host
  if policy_version == nil then
    policy_version = redis.call('HGET', base .. 'policy', 'v') or false
  end
  local f = redis.call('HMGET', hk, 'pv', 'limit', 'delay', 'names')
  if policy_version and f[1] ~= policy_version then
    local limit, delay = resolve_policy(base .. 'policy', host, f[4])
    if limit then
      f[2], f[3] = limit, delay
      local nxt = hnum(hk, 'last', 0) + delay
      if nxt > hnum(hk, 'next', 0) then
        redis.call('HSET', hk, 'next', string.format('%d', nxt))
      end
      redis.call('HSET', hk, 'pv', policy_version, 'limit', limit, 'delay', delay)
    end
  end
  return tonumber(f[2] or 1), tonumber(f[3] or 0)
end

-- Priority bands (crawler/pages/priority.py, crawler/store/keys.py BANDS): a host queues its
-- URLs in q:<host> (band 0, normal) and, raised, in q1:<host> (high) and
-- q2:<host> (top); a claim pops the highest band that holds a URL. Host state
-- fields b1, b2 flag the raised bands that may hold URLs: set when a URL goes
-- in, cleared when the band is seen empty. A crawl that never raises a URL
-- never sets them, and pays for bands only the flags' place in reads of host
-- state it makes anyway: no key, no call more than before.
local RAISED_BANDS = 2
local BAND_FLAGS = {'b1', 'b2'}

local function queue_key(base, host, band)
  if band == 0 then return base .. 'q:' .. host end
  return base .. 'q' .. band .. ':' .. host
end

-- A small host's URLs: while a host's normal band holds at most INLINE_KEPT
-- entries, they wait in its host state, fields u, u2, u3 in order, and the
-- band has no list (issue 24: a q:<host> list key cost a host of 1-3 URLs
-- ~105 B; a field ~3 B besides its entry). One more moves them all to
-- q:<host>, in order; a URL given back to the front goes before them. So the
-- fields are set only while q:<host> does not exist, from u on without a gap,
-- and the normal band is the fields, else the list. Every push goes through
-- ``enqueue``, every pop through ``dequeue``; readers of the band's length
-- read the fields in the host-state HMGET they make anyway (``inline_count``).
-- An entry over INLINE_MAX bytes stays in a list: a longer value would turn
-- the host state from a listpack into a hash table for good
-- (hash-max-listpack-value, 64 by default), dearer than the list.
local INLINE = {'u', 'u2', 'u3'}
local INLINE_KEPT = 3
local INLINE_MAX = 64

-- How many inline entries an HMGET reply holds from index i on (the fields of
-- INLINE, asked in order). No table: this runs for every host a claim touches.
local function inline_count(f, i)
  if not f[i] then return 0 end
  if not f[i + 1] then return 1 end
  if not f[i + 2] then return 2 end
  return 3
end

-- URLs queued in every band; b1, b2: the host state's flags (false: unset);
-- inline: its inline entries (inline_count). A flagged band found empty loses
-- its flag. (Arguments, not a table: this runs for every host a claim
-- touches, and a table a call is garbage.)
local function flagged_band_length(base, host, band)
  local n = redis.call('LLEN', queue_key(base, host, band))
  if n == 0 then redis.call('HDEL', base .. 'h:' .. host, BAND_FLAGS[band]) end
  return n
end

local function queued_urls(base, host, b1, b2, inline)
  local queued = inline > 0 and inline or redis.call('LLEN', base .. 'q:' .. host)
  if b1 then queued = queued + flagged_band_length(base, host, 1) end
  if b2 then queued = queued + flagged_band_length(base, host, 2) end
  return queued
end

-- Queue entries in a band: at the back (new URLs) or, one entry, at the front
-- (a URL given back). Flags a raised band in the host state. Returns the
-- band's length after.
local function enqueue(base, host, band, entries, front)
  local hk = base .. 'h:' .. host
  local queue = queue_key(base, host, band)
  if band == 0 then
    local inline = redis.call('HMGET', hk, unpack(INLINE))
    local k = inline_count(inline, 1)
    if k + #entries <= INLINE_KEPT and (k > 0 or redis.call('EXISTS', queue) == 0) then
      local fits = true
      for j = 1, #entries do
        if #entries[j] > INLINE_MAX then fits = false end
      end
      if fits then
        local set = {}
        if front then  -- first, the others one field on
          set[1], set[2] = INLINE[1], entries[1]
          for j = 1, k do set[2 * j + 1], set[2 * j + 2] = INLINE[j + 1], inline[j] end
        else
          for j = 1, #entries do set[2 * j - 1], set[2 * j] = INLINE[k + j], entries[j] end
        end
        redis.call('HSET', hk, unpack(set))
        return k + #entries
      end
    end
    if k > 0 then  -- past INLINE_KEPT (or too long): all to the list, in order
      redis.call('HDEL', hk, unpack(INLINE, 1, k))
      local all = {}
      if front then all[1] = entries[1] end
      for j = 1, k do all[#all + 1] = inline[j] end
      if not front then
        for j = 1, #entries do all[#all + 1] = entries[j] end
      end
      entries, front = all, false
    end
  end
  local length
  for start = 1, #entries, 1000 do  -- unpack has a stack limit
    length = redis.call(front and 'LPUSH' or 'RPUSH', queue,
      unpack(entries, start, math.min(start + 999, #entries)))
  end
  if band > 0 then redis.call('HSET', hk, BAND_FLAGS[band], 1) end
  return length
end

-- The first entry of the normal band, taken out (false: none). ``f``, ``i``:
-- the caller's HMGET of the host state, the fields of INLINE from index i on.
local function dequeue(base, host, f, i)
  local k = inline_count(f, i)
  if k == 0 then return redis.call('LPOP', base .. 'q:' .. host) end
  local hk = base .. 'h:' .. host
  if k == 2 then
    redis.call('HSET', hk, INLINE[1], f[i + 1])
  elseif k == 3 then
    redis.call('HSET', hk, INLINE[1], f[i + 1], INLINE[2], f[i + 2])
  end
  redis.call('HDEL', hk, INLINE[k])
  return f[i]
end

-- A host is in the ready set exactly while it has queued URLs and a free
-- concurrency slot; its score is the earliest time its next request may start.
-- A host with nothing queued, leased or delayed goes to the idle set, scored
-- by when its politeness window ends; reclaim.lua then compacts its state.
-- Returns the URLs the host has queued, in every band.
local function refresh_ready(base, host, now)
  local hk = base .. 'h:' .. host
  local limit = host_policy(base, host)
  local f = redis.call('HMGET', hk, 'inflight', 'next', 'dl', 'b1', 'b2', unpack(INLINE))
  local inflight = tonumber(f[1] or 0)
  local queued = queued_urls(base, host, f[4], f[5], inline_count(f, 6))
  local nxt = tonumber(f[2] or 0)
  if nxt < now then nxt = now end
  if inflight < limit and queued > 0 then
    redis.call('ZADD', KEYS[1], string.format('%d', nxt), host)
  else
    redis.call('ZREM', KEYS[1], host)
    if queued == 0 and inflight == 0 and tonumber(f[3] or 0) == 0 then
      redis.call('ZADD', base .. 'idle', string.format('%d', nxt), host)
    end
  end
  return queued
end

local function release_slot(base, host, now)
  local hk = base .. 'h:' .. host
  if redis.call('HINCRBY', hk, 'inflight', -1) < 0 then
    redis.call('HSET', hk, 'inflight', 0)
  end
  refresh_ready(base, host, now)
end

-- Lease record: host|worker|claimed|prev|mine|attempts|depth|hops[,band]|url
-- (the url may hold '|'): the claim's time, the host's next-allowed time
-- before it and the one it set (complete.lua gives the slot back when no
-- request was made), then the queue entry's fields and its band, written only
-- when raised: a normal URL's record is what it was before bands.
local function hops_band(hops, band)
  if band > 0 then return string.format('%d,%d', hops, band) end
  return string.format('%d', hops)
end

local function split_lease(data)
  local host, worker, claimed, prev, mine, attempts, depth, hops, band, url = string.match(data,
    '^([^|]*)|([^|]*)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+),?(%d*)|(.*)$')
  return host, worker, tonumber(attempts), tonumber(depth), tonumber(hops), url,
    tonumber(claimed), tonumber(prev), tonumber(mine), tonumber(band) or 0
end

-- A retry waiting in the delayed set: host|attempts,depth,hops[,band]|url,
-- the whole URL (the host's prefix table may be gone by the time it is due).
local function delayed_member(host, attempts, depth, hops, band, url)
  return string.format('%s|%d,%d,', host, attempts, depth) .. hops_band(hops, band) .. '|' .. url
end

local function split_delayed(member)
  local host, attempts, depth, hops, band, url = string.match(member,
    '^([^|]*)|(%d+),(%d+),(%d+),?(%d*)|(.*)$')
  return host, tonumber(attempts), tonumber(depth), tonumber(hops), tonumber(band) or 0, url
end

-- Queue entry: what a queued URL costs. A header byte holds the depth
-- (0..126) when attempts and redirect hops are zero, the usual case; else the
-- byte 0x80 and "attempts,depth,hops|". Then one byte naming the URL's prefix
-- (scheme, authority and directory, up to the last '/' of the path; or, from
-- add.lua, through the query's first '=': ``query_prefix``) in the
-- host's prefix table px:<host>, and the rest of the URL; or, for a prefix
-- not shared (yet) or once the table is full, the URL plainly (``plain``).
-- A host's URLs share few prefixes, so an entry is little more than its file
-- name and query. A sitemap to read carries its mark in hops
-- (crawler/frontier/leases.py SITEMAP_HOPS): no script needs to know it.
local PREFIXES_KEPT = 250

local function header(attempts, depth, hops)
  if attempts == 0 and hops == 0 and depth < 127 then return string.char(depth + 1) end
  return string.format('\128%d,%d,%d|', attempts, depth, hops)
end

local function split_url(url)
  local q = string.find(url, '?', 1, true)
  local path_end = q and q - 1 or #url
  local cut = string.match(string.sub(url, 1, path_end), '^.*()/')
  return string.sub(url, 1, cut), string.sub(url, cut + 1)
end

-- A URL with a query shares more with its host's other URLs through the
-- path and the query's first name ("/item?id=") than through its directory
-- ("/"): add.lua tries this prefix first, then the directory. Only while it
-- is short: a hash field over 64 bytes (hash-max-listpack-value) would turn
-- the host's whole table into a hash table, several times the bytes.
-- At most QUERY_IDS of a host's ids go to such prefixes.
local QUERY_IDS = 128
local QUERY_PREFIX_CHARS = 60

-- The prefix through the query's first '=' (``q``: where the '?' is), or false.
local function query_prefix(url, q)
  local eq = string.find(url, '=', q + 1, true)
  if not eq then return false end
  local amp = string.find(url, '&', q + 1, true)
  local path = string.find(url, '/', (string.find(url, '://', 1, true) or 0) + 3, true)
  if (amp and amp < eq) or not path or eq - path >= QUERY_PREFIX_CHARS then return false end
  return string.sub(url, 1, eq)
end

-- A URL or prefix without its origin: byte 255 and what follows
-- "https://<host>" when it starts so (254: "http://<host>"), else 0 and the
-- whole of it. The queue's key names the host already (the revisit hash
-- strips it the same way); the host's prefix table stores its prefixes so too.
local function strip_origin(host, url)
  local n = #host
  if string.sub(url, 9, 8 + n) == host and string.sub(url, 1, 8) == 'https://'
      and string.sub(url, 9 + n, 9 + n) == '/' then
    return '\255' .. string.sub(url, 9 + n)
  elseif string.sub(url, 8, 7 + n) == host and string.sub(url, 1, 7) == 'http://'
      and string.sub(url, 8 + n, 8 + n) == '/' then
    return '\254' .. string.sub(url, 8 + n)
  end
  return '\0' .. url
end

-- The whole URL (or prefix) again. A table written before prefixes were
-- stored without their origin holds them whole: they start with a letter.
local function with_origin(host, s)
  local b = string.byte(s, 1)
  if b == 255 then return 'https://' .. host .. string.sub(s, 2) end
  if b == 254 then return 'http://' .. host .. string.sub(s, 2) end
  if b == 0 then return string.sub(s, 2) end
  return s
end

-- A URL stored plainly: its header, then the URL without its origin.
local function plain(head, host, url)
  return head .. strip_origin(host, url)
end

-- A prefix is shared only when it is shared: on a host past SMALL URLs, the
-- first URL of a prefix is stored plainly (without its origin, see ``plain``)
-- and leaves a mark, a 2-byte digest of the prefix, in px:<host>; the second
-- URL of the prefix (marked, or a second one in the same call) moves it to
-- the table.
-- A table entry costs the prefix twice plus fields, so a prefix of one URL
-- cost more in the table than plainly (issue 24: URLs each in a directory of
-- their own paid 148 B, a host with one URL a whole hash). A digest that
-- collides only moves a prefix to the table early (1 new prefix in ~650 with
-- 100 marks kept): the table maps ids to whole prefixes, never to digests.
-- Marks are packed, MARK_CHUNK of them a field (``~1`` .. ``~4``), not a field
-- each: a field costs more than its digest (issue 24: 14 B of marks a URL
-- where every URL has a directory of its own), and a field's value stays
-- under the 64 bytes (hash-max-listpack-value) that keep the hash a listpack.
-- At most MARKS_KEPT marks a host: past them, new prefixes stay plain.
local MARKS_KEPT = 100
local MARK_CHUNK = 30
local MARK_FIELDS = {'~1', '~2', '~3', '~4'}
-- A host without a table that will hold at most SMALL URLs queued (in its
-- normal band) gets no table and leaves no marks: all its URLs are plain.
-- A plain entry already leaves out its origin, so a table saves a small host
-- only its directories, less than the ~100 B of a px key (issue 24's broad
-- shape: most hosts hold 1-3 URLs). Marks start once a host outgrows SMALL.
local SMALL = 8

local function mark_of(prefix)
  local hex = redis.sha1hex(prefix)
  return string.char(tonumber(string.sub(hex, 1, 2), 16), tonumber(string.sub(hex, 3, 4), 16))
end

-- Where ``mark`` is in ``marks`` (packed 2-byte marks), or nil.
local function find_mark(marks, mark)
  local at = string.find(marks, mark, 1, true)
  while at and at % 2 == 0 do at = string.find(marks, mark, at + 1, true) end
  return at
end

-- The host's marks, packed (or false: the host keeps no table), its marks
-- fields as read, and the ids handed out. ``adding``: the URLs this call
-- queues on the host; a small host's queue may be inline in its state.
local function marks_of(base, host, px, adding)
  if redis.call('EXISTS', px) == 0 then
    local queued = redis.call('LLEN', base .. 'q:' .. host)
    if queued == 0 then
      queued = inline_count(redis.call('HMGET', base .. 'h:' .. host, unpack(INLINE)), 1)
    end
    if queued + adding <= SMALL then return false, nil, 0 end
  end
  local fields = redis.call('HMGET', px, 'n', unpack(MARK_FIELDS))
  local packed = {}
  for j = 1, #MARK_FIELDS do packed[j] = fields[j + 1] or '' end
  return table.concat(packed), {unpack(fields, 2)}, tonumber(fields[1] or 0)
end

-- Write back the marks fields that changed (one HSET, one HDEL at most).
local function store_marks(px, marks, before)
  local set, gone = {}, {}
  for j, field in ipairs(MARK_FIELDS) do
    local chunk = string.sub(marks, (j - 1) * 2 * MARK_CHUNK + 1, j * 2 * MARK_CHUNK)
    if chunk ~= (before[j] or '') then
      if chunk == '' then gone[#gone + 1] = field
      else set[#set + 1], set[#set + 2] = field, chunk end
    end
  end
  if #set > 0 then redis.call('HSET', px, unpack(set)) end
  if #gone > 0 then redis.call('HDEL', px, unpack(gone)) end
end

-- The ids of a host's prefixes (add.lua: those of a group of new URLs), in
-- ``known`` (prefix -> id; 0: stored plainly): one HMGET for those not there
-- yet, one for the marks, then one HINCRBY and one HSET for the prefixes
-- that move to the table, instead of a lookup each. Past PREFIXES_KEPT ids a
-- prefix gets 0: its entries keep the whole URL. ``id_limit`` (add.lua's
-- query prefixes): a new prefix goes to the table only when two of
-- ``prefixes`` use it, and leaves no mark; once the host handed out that
-- many ids, none, so the ids left go to directories.
local function prefix_ids(base, host, prefixes, known, id_limit, none_stored)
  local wanted, uses = {}, {}
  for _, prefix in ipairs(prefixes) do
    if not known[prefix] then
      local n = uses[prefix]
      if not n then wanted[#wanted + 1] = prefix end
      uses[prefix] = (n or 0) + 1
    end
  end
  if #wanted == 0 then return end
  local px = base .. 'px:' .. host
  local missing = wanted
  -- ``none_stored``: the caller knows none of these can be in the table (add.lua:
  -- a host that never stored a query prefix), so there is nothing to look up.
  if not none_stored then
    local fields = {}
    for j, prefix in ipairs(wanted) do fields[j] = '=' .. strip_origin(host, prefix) end
    local found = redis.call('HMGET', px, unpack(fields))
    missing = {}
    for j, prefix in ipairs(wanted) do
      if found[j] then
        known[prefix] = tonumber(found[j])
      else
        missing[#missing + 1] = prefix
      end
    end
    if #missing == 0 then return end
  end
  if id_limit then
    -- A query prefix leaves no mark: it goes to the table when two URLs of one
    -- call use it. A URL with a query of its own (``/a-1.html?page=2``) then
    -- costs one field lookup, not a digest and the marks too (with them, adds
    -- where every URL had one took up to twice the server time, in runs on a
    -- loaded machine).
    local twice = {}
    for _, prefix in ipairs(missing) do
      if uses[prefix] > 1 then twice[#twice + 1] = prefix else known[prefix] = 0 end
    end
    if #twice == 0 then return end
    missing = twice
  end
  local marks, before, ids = marks_of(base, host, px, #prefixes)
  if not marks or (id_limit and ids >= id_limit) then
    for _, prefix in ipairs(missing) do known[prefix] = 0 end
    return
  end
  local shared, marked = {}, marks
  for _, prefix in ipairs(missing) do
    local mark = mark_of(prefix)
    local at = find_mark(marked, mark)
    if at or uses[prefix] > 1 then
      shared[#shared + 1] = prefix
      if at then marked = string.sub(marked, 1, at - 1) .. string.sub(marked, at + 2) end
    else
      known[prefix] = 0
      if #marked < 2 * MARKS_KEPT then marked = marked .. mark end
    end
  end
  if marked ~= marks then store_marks(px, marked, before) end
  if #shared == 0 then return end
  local first = redis.call('HINCRBY', px, 'n', #shared) - #shared + 1
  local stored = {}
  for j, prefix in ipairs(shared) do
    local id = first + j - 1
    if id > (id_limit or PREFIXES_KEPT) then
      id = 0
    else
      local n, short = #stored, strip_origin(host, prefix)
      stored[n + 1], stored[n + 2], stored[n + 3], stored[n + 4] = '=' .. short, id, id, short
    end
    known[prefix] = id
  end
  if #stored > 0 then redis.call('HSET', px, unpack(stored)) end
end

-- ``known``: prefix -> id already looked up for this host in this call (or nil).
local function prefix_id(base, host, prefix, known)
  known = known or {}
  prefix_ids(base, host, {prefix}, known)
  return known[prefix]
end

-- ``cut``, when the caller knows it: the length of the URL's prefix.
local function entry(base, host, attempts, depth, hops, url, known, cut)
  local prefix, rest
  if cut then
    prefix, rest = string.sub(url, 1, cut), string.sub(url, cut + 1)
  else
    prefix, rest = split_url(url)
  end
  local id = prefix_id(base, host, prefix, known)
  if id == 0 then return plain(header(attempts, depth, hops), host, url) end
  return header(attempts, depth, hops) .. string.char(id) .. rest
end

local function parse_entry(base, host, e)
  local attempts, depth, hops, pos = 0, string.byte(e, 1) - 1, 0, 2
  if depth >= 127 then
    local a, d, h, after = string.match(e, '^.(%d+),(%d+),(%d+)|()')
    attempts, depth, hops, pos = tonumber(a), tonumber(d), tonumber(h), after
  end
  local id = string.byte(e, pos)
  if id == 0 or id >= 254 then
    return attempts, depth, hops, with_origin(host, string.sub(e, pos))
  end
  return attempts, depth, hops,
    with_origin(host, redis.call('HGET', base .. 'px:' .. host, id)) .. string.sub(e, pos + 1)
end

-- Queue an entry at the back (new URLs) or the front (URLs given back) of
-- its band, flagging a raised band in the host's state.
local function push(base, host, attempts, depth, hops, url, front, band)
  enqueue(base, host, band, {entry(base, host, attempts, depth, hops, url)}, front)
end

-- Give a lease's URL back to the front of its host's queue, in its band.
local function push_lease(base, data, count_attempt)
  local host, _, attempts, depth, hops, url, _, _, _, band = split_lease(data)
  if count_attempt then attempts = attempts + 1 end
  push(base, host, attempts, depth, hops, url, true, band)
  return host
end

-- A host held back (robots.txt unreachable, 429/503 backoff, Retry-After) is
-- listed in the shard's held set until the hold ends, its reason in its host
-- state: what crawl status and the progress line show. Claims prune it.
local function hold_host(base, host, until_ms, reason)
  redis.call('ZADD', base .. 'held', string.format('%d', until_ms), host)
  redis.call('HSET', base .. 'h:' .. host, 'hold', reason)
end

-- Sent twice. A pipeline may reach the server twice (redis-py resends it
-- after a dropped connection; the script runners after NOSCRIPT or a cluster
-- failover), so a script must leave the state as after one run. Most are so
-- by what they check (a stale lease, a seen URL, a claim's request id); a
-- script that is not takes a call id, the same in every send of one call,
-- and keeps its reply under done:<call id> for RESEND_MS: a second run finds
-- it and returns it without doing anything again.
local RESEND_MS = 300000

local function reply_of_first_run(base, call_id)
  return redis.call('GET', base .. 'done:' .. call_id)
end

local function keep_reply(base, call_id, reply)
  redis.call('SET', base .. 'done:' .. call_id, reply, 'PX', RESEND_MS)
end

-- Stream ids: "ms-seq".
local function id_less(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end

-- The id below which every consumer group has read and acknowledged every
-- entry of the stream (nil when it has no group: nothing is acknowledged).
-- A group's bound is its oldest pending entry, or the entry after the last
-- it was given.
local function acknowledged_until(stream)
  local groups = redis.call('XINFO', 'GROUPS', stream)
  if #groups == 0 then return nil end
  local low = nil
  for _, group in ipairs(groups) do
    local info = {}
    for i = 1, #group, 2 do info[group[i]] = group[i + 1] end
    local bound
    if tonumber(info['pending']) > 0 then
      bound = redis.call('XPENDING', stream, info['name'])[2]
    else
      local ms, seq = string.match(info['last-delivered-id'], '^(%d+)-(%d+)$')
      bound = ms .. '-' .. string.format('%d', tonumber(seq) + 1)
    end
    if low == nil or id_less(bound, low) then low = bound end
  end
  return low
end

-- On a cluster, while this shard's slot migrates key by key (redis-cli
-- --cluster reshard), a key already moved reads as missing and the script
-- would abort at it halfway, its earlier writes kept (Lua is not rolled
-- back). Any access to a missing key of a migrating slot is refused, so a
-- key that never exists is a probe: refused means "migrating", and the
-- script stops here, before any write. The client retries on the slot's
-- owner until the move is over (crawler.frontier.cluster).
if type(redis.pcall('EXISTS', KEYS[1] .. ':probe')) == 'table' then
  return redis.error_reply('TRYAGAIN slot is migrating')
end

-- cookies = true: a host's cookie jar for a lease (cookies.lua writes it), its
-- expired cookies dropped on Redis's clock, as 'field\nvalue\n...' ('' if none).
local function cookie_jar(base, host, now)
  local jar = base .. 'ck:' .. host
  local all = redis.call('HGETALL', jar)
  local out = {}
  for i = 1, #all, 2 do
    local at = tonumber(string.match(all[i + 1], '^(%d+)|') or 0)
    if at > 0 and at <= now then
      redis.call('HDEL', jar, all[i])
    else
      out[#out + 1] = all[i]
      out[#out + 1] = all[i + 1]
    end
  end
  return table.concat(out, '\n')
end
