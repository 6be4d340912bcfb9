-- Near-duplicates and traps: helpers of add.lua and complete.lua (after _lib.lua).
--
-- A host's SimHash index (nd:<host>, ndo:<host>): the 64 bits are 4 blocks of
-- 16; two hashes within 3 bits agree on at least one block (pigeonhole), so a
-- lookup reads 4 hash fields and compares only the hashes filed under them,
-- and a few more for the values the new page's weak bits make (probe_fields).
-- Redis Lua numbers are doubles and its bit library is 32-bit: hashes stay
-- hex strings here, compared 16 bits at a time.

local TRAP_WINDOW = 50  -- a host's recent new URLs (or pages) judged together
local TRAP_LISTED_MS = 86400000  -- a throttled host shows as held this long
local TRAP_PATH_CHARS = 200  -- a path's characters that count as its name
local BLOCK_KEPT = 16  -- hashes one block value of nd:<host> keeps, the newest

-- A path's count of URLs with a query (trap_query_budget). Its first such URL
-- costs 8 B: 52 bits of the path's SHA-1 in one of 4096 shard-wide integer
-- sets (tp:<3 hex digits>, intsets). A second one moves the count to a field
-- in tq:<host> (48 bits of the SHA-1 -> the count: ~16 B while the host has
-- at most 512 such paths, ~39 B past that). Most paths have one such URL
-- (/item-42.html?r=1): as the URL up to its '?' a field cost ~103 B, more
-- than its queue entry (~14 B in a long compressed queue). Two of a host's n
-- paths share a count with odds n^2 / 2^49 (1 in 56,000 at 100,000 paths;
-- a shard's in tp: n^2 / 2^53), and then only reach the budget sooner.
local function trap_path_id(path)
  local hex = redis.sha1hex(path)
  return {field = string.sub(hex, 1, 12),
          -- 52 bits: exact in a Lua number, sent as its integer digits (an intset)
          member = tonumber(string.sub(hex, 1, 13), 16),
          bucket = string.sub(hex, 14, 16)}
end

-- A path's count: from tq:<host>, else 0 or 1, which only a budget of 1 needs
-- told apart (SISMEMBER); for any other budget trap_path_counted's SADD says.
local function trap_path_count(base, host, id, budget)
  local count = hnum(base .. 'tq:' .. host, id.field, 0)
  if count == 0 and budget == 1 then
    count = redis.call('SISMEMBER', base .. 'tp:' .. id.bucket, id.member)
  end
  return count
end

-- One more URL of the path: its new count, stored.
local function trap_path_counted(base, host, id, count)
  if count == 0 then
    if redis.call('SADD', base .. 'tp:' .. id.bucket, id.member) == 1 then return 1 end
    count = 1  -- it had one already
  end
  redis.call('HSET', base .. 'tq:' .. host, id.field, count + 1)
  return count + 1
end

local function bits16(x)
  local n = 0
  while x ~= 0 do
    x = bit.band(x, x - 1)
    n = n + 1
  end
  return n
end

-- Bits in which two hashes differ, not counting those set in `weak` (all
-- three 16 hex digits; weak may be nil: every bit counts).
local function hex_distance(a, b, weak)
  local d = 0
  for k = 1, 13, 4 do
    local differ = bit.bxor(tonumber(string.sub(a, k, k + 3), 16),
                            tonumber(string.sub(b, k, k + 3), 16))
    if weak then
      differ = bit.band(differ, bit.bxor(tonumber(string.sub(weak, k, k + 3), 16), 0xffff))
    end
    d = d + bits16(differ)
  end
  return d
end

-- Throttle a host that looks like a trap: it may queue only trap_pages more
-- URLs (tcap, which add.lua counts down), and crawl status lists it as held
-- with the reason. Once throttled, it stays so (the first reason is kept).
local function throttle_host(base, host, trap_pages, reason, now)
  local hk = base .. 'h:' .. host
  if trap_pages < 0 or redis.call('HEXISTS', hk, 'tcap') == 1 then return end
  redis.call('HSET', hk, 'tcap', trap_pages, 'trap', reason)
  hold_host(base, host, now + TRAP_LISTED_MS, 'trap: ' .. reason)
  redis.call('HINCRBY', base .. 'stats', 'trapped_hosts', 1)
end

-- Count judged items in a host's window (fields n and d of its state): one
-- HINCRBY a page in the common case (no bad item), the bad count read only
-- when the window closes. Past TRAP_WINDOW items, throttle the host if most
-- were bad, and start over.
local function judge_window(base, host, nfield, dfield, n, d, trap_pages, what, now)
  local hk = base .. 'h:' .. host
  local total = redis.call('HINCRBY', hk, nfield, n)
  local bad
  if d > 0 then bad = redis.call('HINCRBY', hk, dfield, d) end
  if total >= TRAP_WINDOW then
    bad = bad or tonumber(redis.call('HGET', hk, dfield) or '0')
    if trap_pages >= 0 and 2 * bad > total then
      throttle_host(base, host, trap_pages,
        string.format('%d of its last %d %s', bad, total, what), now)
    end
    redis.call('HDEL', hk, nfield, dfield)
  end
end

-- The 4 fields of nd:<host> a hash is filed under: its block number, then the
-- block's 4 hex digits.
local function block_fields(hash)
  local fields = {}
  for block = 0, 3 do
    fields[block + 1] = block .. string.sub(hash, 4 * block + 1, 4 * block + 4)
  end
  return fields
end

-- Take `old` out of the host's index (it left the window): its URL and its
-- entry under each block, in one HMGET and one HSET / HDEL.
local function unfile(nk, old)
  local fields = block_fields(old)
  local filed = redis.call('HMGET', nk, fields[1], fields[2], fields[3], fields[4])
  local set_args, gone = {}, {'u' .. old}
  for block = 1, 4 do
    local kept = {}
    local list = filed[block] or ''
    for k = 1, #list, 16 do  -- aligned: a match must not straddle two hashes
      local one = string.sub(list, k, k + 15)
      if one ~= old then kept[#kept + 1] = one end
    end
    local left = table.concat(kept)
    if left == '' then
      gone[#gone + 1] = fields[block]
    elseif left ~= list then
      set_args[#set_args + 1] = fields[block]
      set_args[#set_args + 1] = left
    end
  end
  redis.call('HDEL', nk, unpack(gone))
  if #set_args > 0 then redis.call('HSET', nk, unpack(set_args)) end
end

-- The fields of nd:<host> to read for `hash`: its 4 block fields, then, when
-- it has weak bits (16 hex, or nil), every other value they make of the
-- block with the fewest of them (2^w - 1 more fields for w weak bits there;
-- the worker sends at most 12, crawler.pages.simhash.WEAK_BITS, so w <= 3).
-- A hash that differs from `hash` only in weak bits agrees with it on every
-- other bit, so it is filed under one of that block's values.
local function probe_fields(hash, weak)
  local fields = block_fields(hash)
  if not weak then return fields end
  local fewest, loose = nil, 0
  for block = 0, 3 do
    local bits = tonumber(string.sub(weak, 4 * block + 1, 4 * block + 4), 16)
    if fewest == nil or bits16(bits) < bits16(loose) then fewest, loose = block, bits end
  end
  -- More than 3 in every block is more than any worker sends: read no more.
  if bits16(loose) > 3 then return fields end
  local value = tonumber(string.sub(hash, 4 * fewest + 1, 4 * fewest + 4), 16)
  local flip = loose
  while flip ~= 0 do  -- every non-empty subset of the block's weak bits
    fields[#fields + 1] = fewest .. string.format('%04x', bit.bxor(value, flip))
    flip = bit.band(flip - 1, loose)
  end
  return fields
end

-- Find a page of this host that `hash` (16 hex digits) is a near-duplicate
-- of: within `distance` bits of it, or (distance > 0) differing from it only
-- in bits set in `weak` (16 hex, or nil/'': none), the bits one word of the
-- new page could flip (crawler.pages.simhash.weak_bits: a copy with a word
-- changed differs in those alone, and 4 or more of them for about 1 copy in
-- 20). The newest one met, field by field (not always the nearest: Lua's bit
-- arithmetic costs, and a host of near-identical pages has many); then file
-- `hash` under `url`, keeping the host's last `window` hashes.
-- Returns the earlier page's URL, or nil. Sent twice, the same URL finds the
-- same answer: a hash filed under the URL itself is never its own duplicate,
-- and a hash filed already is not filed again.
-- Server work a page: one HMGET (the 4 block fields, the few more that weak
-- bits make, and the hash's own URL field), one HSET, one RPUSH; an HGET a
-- candidate found; an unfile once the window is full.
local function near_duplicate(base, host, hash, url, distance, window, weak)
  local nk, ok = base .. 'nd:' .. host, base .. 'ndo:' .. host
  if weak == '' or weak == '0000000000000000' or distance == 0 then weak = nil end
  local fields = probe_fields(hash, weak)
  local own = #fields + 1
  fields[own] = 'u' .. hash
  local filed = redis.call('HMGET', nk, unpack(fields))
  local best = nil
  for f = 1, own - 1 do
    local list = filed[f]
    if list then
      for k = #list - 15, 1, -16 do  -- the newest first
        local other = string.sub(list, k, k + 15)
        if hex_distance(hash, other) <= distance
            or (weak and hex_distance(hash, other, weak) == 0) then
          local other_url = (other == hash and filed[own]) or redis.call('HGET', nk, 'u' .. other)
          if other_url and other_url ~= url then best = other_url; break end
        end
      end
    end
    if best then break end
  end
  if not filed[own] then
    local set_args = {'u' .. hash, url}
    for block = 1, 4 do  -- the block fields, read first: fields[1..4]
      local list = (filed[block] or '') .. hash
      -- A host of near-identical pages shares block values: keep a field's
      -- newest BLOCK_KEPT hashes, so no lookup scans the whole window.
      if #list > 16 * BLOCK_KEPT then list = string.sub(list, -16 * BLOCK_KEPT) end
      set_args[#set_args + 1] = fields[block]
      set_args[#set_args + 1] = list
    end
    redis.call('HSET', nk, unpack(set_args))
    if redis.call('RPUSH', ok, hash) > window then
      unfile(nk, redis.call('LPOP', ok))
    end
  end
  return best
end

-- ISO 8601 UTC of ms since the epoch (records' fetched_at), without os.date.
local function iso_time(ms)
  local secs = math.floor(ms / 1000)
  local days, rem = math.floor(secs / 86400), secs % 86400
  -- Howard Hinnant's civil_from_days.
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400 + (m <= 2 and 1 or 0)
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', y, m, d, math.floor(rem / 3600),
    math.floor(rem % 3600 / 60), rem % 60, ms % 1000)
end

-- The one result of a URL a trap budget refused: the fields of
-- crawler/results/records.py, in its order, with a `trap` error.
local function trap_record(url, depth, message, now)
  return '{"url":' .. cjson.encode(url) .. ',"final_url":null,"status":null,"title":null,'
    .. '"links":0,"content_type":null,"bytes":0,"depth":' .. depth .. ',"attempts":0,'
    .. '"elapsed_ms":0.0,"total_elapsed_ms":0.0,"fetched_at":"' .. iso_time(now) .. '",'
    .. '"worker":"frontier","noindex":false,"redirect_to":null,'
    .. '"error":{"type":"trap","message":' .. cjson.encode(message) .. '},'
    .. '"simhash":null,"near_duplicate_of":null}'
end

-- Files that result in the results stream and counts it: seen (the URL is
-- marked seen by the caller), done, and an error of type trap.
local function add_trap_result(stream, stats, url, depth, message, now)
  redis.call('XADD', stream, '*', 'r', trap_record(url, depth, message, now))
  redis.call('HINCRBY', stats, 'seen', 1)
  redis.call('HINCRBY', stats, 'done', 1)
  redis.call('HINCRBY', stats, 'errors', 1)
  redis.call('HINCRBY', stats, 'e:trap', 1)
end
