-- retry_errors: queue again the done URLs whose last result was an error of
-- the given types (complete.lua files them in failed:<type>), as crawl retry
-- --errors asks. Each goes to the back of its host's normal queue at its
-- depth and hops (a sitemap stays a sitemap), with no attempt counted, and
-- leaves failed:<type> for retried (URL -> its retry number), which its next
-- result's record carries as "retry". Sent twice, the second run finds those
-- URLs gone from failed:<type>: none is queued twice.
-- ARGV: base, limit and delay_ms (the host's policy if its state was
--       compacted away since), count (URLs at most this call), then the types.
-- Returns {URLs queued, URLs still filed under the types}.
local base = ARGV[1]
local budget = tonumber(ARGV[4])
local now = now_ms()
local total = 0
local by_host = {}
local hosts = {}
local known = {}
for i = 5, #ARGV do
  local fk = base .. 'failed:' .. ARGV[i]
  local cursor = '0'
  repeat
    local page = redis.call('HSCAN', fk, cursor, 'COUNT', budget - total)
    cursor = page[1]
    local flat = page[2]
    for j = 1, #flat, 2 do
      if total >= budget then break end
      local url, value = flat[j], flat[j + 1]
      local host, depth, hops, retries = string.match(value, '^(.*)|(%d+)|(%d+)|(%d+)$')
      -- HSCAN may return a field twice: only one still there is queued.
      if host and redis.call('HDEL', fk, url) == 1 then
        known[host] = known[host] or {}
        redis.call('RPUSH', base .. 'q:' .. host,
          entry(base, host, 0, tonumber(depth), tonumber(hops), url, known[host]))
        redis.call('HSET', base .. 'retried', url, tonumber(retries) + 1)
        if not by_host[host] then
          by_host[host] = 0
          hosts[#hosts + 1] = host
        end
        by_host[host] = by_host[host] + 1
        total = total + 1
      end
    end
  until cursor == '0' or total >= budget
end
for _, host in ipairs(hosts) do
  queue_revisits_done(base, host, by_host[host], ARGV[2], ARGV[3], now)
end
if total > 0 then
  redis.call('HINCRBY', KEYS[7], 'queued', total)
  redis.call('HINCRBY', KEYS[7], 'retried', total)
end
local left = 0
for i = 5, #ARGV do left = left + redis.call('HLEN', base .. 'failed:' .. ARGV[i]) end
return {total, left}
