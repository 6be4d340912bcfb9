-- lastmod: keep the <lastmod> a sitemap lists for each of its URLs in the URL's
-- revisit state in v:<host> (recrawl = true; crawler/discovery/lastmod.py), whether it
-- is queued, leased or done: a done URL's state gets it in place (its '*'
-- mark kept), a URL not fetched yet gets a state of its own, visit 0, which
-- its first result replaces (complete.lua keeps the lastmod). Only URLs the
-- crawl has seen keep one: a URL over max_pages_per_host is never fetched,
-- and must cost nothing. A lastmod in the future counts as now.
-- ARGV: base, then groups of one host's URLs: host, count, then count x
--       (bucket_hex, fingerprint, field in v:<host>, lastmod in unix seconds).
-- Returns the number of URLs whose lastmod was kept.
local base = ARGV[1]
local now_s = math.floor(now_ms() / 1000)
local kept = 0
local i = 2
while i <= #ARGV do
  local host, count = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  local vk = base .. 'v:' .. host
  local before = kept
  for _ = 1, count do
    local bucket, fp, field = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    local lastmod = string.format('%d', math.min(tonumber(ARGV[i + 3]), now_s))
    i = i + 4
    if redis.call('SISMEMBER', base .. 'seen:' .. bucket, fp) == 1 then
      local state = redis.call('HGET', vk, field)
      if state then
        state = with_lastmod(state, lastmod)
      else
        state = '0|0|0|0|' .. lastmod .. '|'
      end
      redis.call('HSET', vk, field, state)
      kept = kept + 1
    end
  end
  if kept > before then redis.call('SADD', base .. 'recrawl_hosts', host) end
end
return kept
