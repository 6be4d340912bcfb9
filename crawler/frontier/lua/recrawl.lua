-- recrawl: queue again the done URLs of some hosts (recrawl = true keeps their
-- state in v:<host>, see crawler/discovery/recrawl.py) whose last fetch is no later than
-- a cutoff, or whose sitemap lastmod is at or after a time and later than
-- their last fetch; either condition suffices. A URL queued for a revisit is
-- marked ('*' before its state) until its next result replaces the state, so
-- running this again while it waits does not queue it twice: one record a URL
-- a visit.
-- ARGV: base, age (seconds: fetched at least that long ago on Redis's clock,
--       the clock complete.lua stamps fetch times with; -1: no fetch-age
--       condition), changed_since
--       (unix seconds; -1: no lastmod condition), limit and delay_ms (the
--       host's policy if its state was compacted away meanwhile), count (the
--       HSCAN hint, fields a host), then pairs of host and HSCAN cursor ('0'
--       to start): a host of a million done URLs takes many bounded calls.
-- Returns {URLs queued, then each host's next cursor ('0': done)}.
local base = ARGV[1]
local since = tonumber(ARGV[3])
local count_hint = ARGV[6]
local now = now_ms()
local cutoff = tonumber(ARGV[2])
if cutoff >= 0 then cutoff = math.floor(now / 1000) - cutoff end
local total = 0
local cursors = {}
for i = 7, #ARGV, 2 do
  local host = ARGV[i]
  local page = redis.call('HSCAN', base .. 'v:' .. host, ARGV[i + 1], 'COUNT', count_hint)
  local flat = page[2]
  local count = 0
  local known = {}
  for j = 1, #flat, 2 do
    local field, state = flat[j], flat[j + 1]
    local _, numbers = split_state(state)
    local fetched = tonumber(numbers[1] or -1)
    local lastmod = tonumber(numbers[5] or 0)
    local due = (cutoff >= 0 and fetched >= 0 and fetched <= cutoff)
      or (since >= 0 and lastmod > 0 and lastmod >= since and lastmod > fetched)
    -- HSCAN may return a field twice: marked the first time, skipped the next.
    if due and queue_revisit(base, host, field, state, known) then count = count + 1 end
  end
  queue_revisits_done(base, host, count, ARGV[4], ARGV[5], now)
  total = total + count
  cursors[#cursors + 1] = page[1]
end
if total > 0 then redis.call('HINCRBY', KEYS[7], 'queued', total) end
return {total, unpack(cursors)}
