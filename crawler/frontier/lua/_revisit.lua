-- Revisit state helpers, prepended to the scripts that read or write v:<host>
-- (crawler/frontier/scripts.py REVISIT_SCRIPTS). A done URL's state
-- (crawler/discovery/recrawl.py RevisitState):
--   [*]fetched|visit|changes|depth[|lastmod[|interval]]|[c<capture>|]validator[\ntitle]
-- '*' while it is queued for a revisit. A validator never starts with a
-- digit, so the numbers end at the first field that is not one. The WARC
-- capture (a 'c' field) rides in the rest, which no script reads. Visit 0: a
-- URL a sitemap listed (with its lastmod) that has no result yet.
local STATE_NUMBERS = 6

-- A URL's field in v:<host>: 's' or 'h' and its path when it is on the host
-- itself over https or http, else the URL (crawler/discovery/recrawl.py revisit_field).
local REVISIT_ORIGINS = {{'s', 'https://'}, {'h', 'http://'}}

local function revisit_field(host, url)
  for _, mark_scheme in ipairs(REVISIT_ORIGINS) do
    local origin = mark_scheme[2] .. host
    if string.sub(url, 1, #origin + 1) == origin .. '/' then
      return mark_scheme[1] .. string.sub(url, #origin + 1)
    end
  end
  return url
end

-- mark ('*' or ''), the numbers (strings), and the rest (validator and title).
local function split_state(state)
  local mark, pos = '', 1
  if string.sub(state, 1, 1) == '*' then mark, pos = '*', 2 end
  local numbers = {}
  while #numbers < STATE_NUMBERS do
    local number, after = string.match(state, '^(%d+)|()', pos)
    if not number then break end
    numbers[#numbers + 1] = number
    pos = after
  end
  return mark, numbers, string.sub(state, pos)
end

local function join_state(mark, numbers, rest)
  return mark .. table.concat(numbers, '|') .. '|' .. rest
end

-- The state with this lastmod (a string of digits) in its fifth number.
local function with_lastmod(state, lastmod)
  local mark, numbers, rest = split_state(state)
  if #numbers < 4 then return state end
  numbers[5] = lastmod
  return join_state(mark, numbers, rest)
end

-- The state with its fetch time (first number) set to now on Redis's clock
-- (complete.lua): crawl recrawl's cutoff and a sitemap's lastmod are compared
-- with it, and the worker that fetched and the machine that asks may disagree.
local function fetched_now(state, now)
  local mark, numbers, rest = split_state(state)
  if #numbers < 4 then return state end
  numbers[1] = string.format('%d', math.floor(now / 1000))
  return join_state(mark, numbers, rest)
end

-- Queue a done URL of the host for a revisit, marking its state; the caller
-- makes the host ready (queue_revisits_done). False when the state is not a
-- done URL's waiting for nothing (queued already, or never fetched).
local function queue_revisit(base, host, field, state, known)
  local mark, numbers = split_state(state)
  if mark ~= '' or #numbers < 4 or tonumber(numbers[2]) < 1 then return false end
  local url = field
  local head = string.sub(field, 1, 2)
  if head == 's/' then url = 'https://' .. host .. string.sub(field, 2)
  elseif head == 'h/' then url = 'http://' .. host .. string.sub(field, 2) end
  redis.call('HSET', base .. 'v:' .. host, field, '*' .. state)
  enqueue(base, host, 0, {entry(base, host, 0, tonumber(numbers[4]), 0, url, known)}, false)
  return true
end

-- After queue_revisit queued `count` URLs of the host: its policy if its
-- state was compacted away meanwhile (limit, delay_ms), and a ready host.
local function queue_revisits_done(base, host, count, limit, delay_ms, now)
  if count == 0 then return end
  local hk = base .. 'h:' .. host
  redis.call('HSETNX', hk, 'limit', limit)
  redis.call('HSETNX', hk, 'delay', delay_ms)
  redis.call('ZREM', base .. 'idle', host)
  refresh_ready(base, host, now)
end

-- A URL taken out of its queue unfetched (drop.lua: crawl stop --drop) while
-- marked for a revisit: its mark goes, so crawl recrawl can queue it again,
-- and with an adaptive interval it is scheduled again that long from now
-- (due.lua took it off the schedule when it queued it).
local function unmark_revisit(base, host, url, now)
  local vk = base .. 'v:' .. host
  local field = revisit_field(host, url)
  local state = redis.call('HGET', vk, field)
  if not state or string.sub(state, 1, 1) ~= '*' then return end
  state = string.sub(state, 2)
  redis.call('HSET', vk, field, state)
  local _, numbers = split_state(state)
  local interval = tonumber(numbers[6] or 0)
  if interval > 0 then
    local due = math.floor(now / 1000) + interval
    redis.call('ZADD', base .. 'due:' .. host, due, field)
    redis.call('ZADD', base .. 'due_hosts', 'LT', due, host)
  end
end
