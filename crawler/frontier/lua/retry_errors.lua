-- retry_errors: queue again the done URLs whose last result was an error of
-- the given types (complete.lua files them in failed), as crawl retry
-- --errors asks, one HSCAN page a call. Each goes to the back of its host's
-- normal queue at its depth and hops (a sitemap stays a sitemap), with no
-- attempt counted, and its entry is marked ('*|host|depth|hops|retry') until
-- its next result, whose record carries "retry" and which files it again or
-- takes it out. Sent twice, the second run finds those URLs marked: none is
-- queued twice.
-- ARGV: base, limit and delay_ms (the host's policy if its state was
--       compacted away since), count (the HSCAN hint), cursor ('0' to start),
--       then the types.
-- Returns {URLs queued, the next cursor ('0': done)}.
local base = ARGV[1]
local now = now_ms()
local wanted = {}
for i = 6, #ARGV do wanted[ARGV[i]] = true end
local fk = base .. 'failed'
local page = redis.call('HSCAN', fk, ARGV[5], 'COUNT', ARGV[4])
local flat = page[2]
local total = 0
local by_host = {}
local hosts = {}
local known = {}
for j = 1, #flat, 2 do
  local url, value = flat[j], flat[j + 1]
  local kind, host, depth, hops, retries = string.match(value,
    '^([^|]*)|(.*)|(%d+)|(%d+)|(%d+)$')
  -- HSCAN may return a field twice: marked the first time, skipped the next.
  if kind and wanted[kind] then
    known[host] = known[host] or {}
    enqueue(base, host, 0,
      {entry(base, host, 0, tonumber(depth), tonumber(hops), url, known[host])}, false)
    redis.call('HSET', fk, url, string.format('*|%s|%s|%s|%d', host, depth, hops,
      tonumber(retries) + 1))
    if not by_host[host] then
      by_host[host] = 0
      hosts[#hosts + 1] = host
    end
    by_host[host] = by_host[host] + 1
    total = total + 1
  end
end
for _, host in ipairs(hosts) do
  queue_revisits_done(base, host, by_host[host], ARGV[2], ARGV[3], now)
end
if total > 0 then
  redis.call('HINCRBY', KEYS[7], 'queued', total)
  redis.call('HINCRBY', KEYS[7], 'retried', total)
end
return {total, page[1]}
