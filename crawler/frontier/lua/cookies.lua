-- cookies: store what a response set in its host's cookie jar (ck:<host>),
-- then hold the jar to its bounds. Sent in the same round trip as the lease's
-- completion (crawler.net.cookies has the rules; the worker refused malformed,
-- oversized, foreign-Domain and insecure-Secure cookies already).
-- Safe to send twice: the second run stores the same cookies (only their set
-- time moves, which orders evictions).
-- A field is 'host path name'; a value 'expires_at_ms|set_at_ms|flags|value',
-- expires_at 0 for a session cookie, both on Redis's clock.
-- ARGV: base, politeness key of the host, max cookies, max bytes, then
--       (field, age_ms ('' session, '0' delete), flags, value) per cookie.
-- Returns the number of cookies the jar holds.
local base = ARGV[1]
local jar = base .. 'ck:' .. ARGV[2]
local max_cookies = tonumber(ARGV[3])
local max_bytes = tonumber(ARGV[4])
local now = now_ms()
for i = 5, #ARGV - 3, 4 do
  local field, age = ARGV[i], ARGV[i + 1]
  if age == '0' then
    redis.call('HDEL', jar, field)
  else
    local at = 0
    if age ~= '' then at = now + tonumber(age) end
    redis.call('HSET', jar, field,
      string.format('%d|%d|', at, now) .. ARGV[i + 2] .. '|' .. ARGV[i + 3])
  end
end
-- Expired cookies leave; then the oldest set go first until both bounds hold.
local all = redis.call('HGETALL', jar)
local live, bytes = {}, 0
for i = 1, #all, 2 do
  local at, set = string.match(all[i + 1], '^(%d+)|(%d+)|')
  at = tonumber(at or 0)
  if at > 0 and at <= now then
    redis.call('HDEL', jar, all[i])
  else
    local size = #all[i] + #all[i + 1]
    live[#live + 1] = {all[i], tonumber(set or 0), size}
    bytes = bytes + size
  end
end
table.sort(live, function(a, b) return a[2] < b[2] or (a[2] == b[2] and a[1] < b[1]) end)
local kept = #live
for _, cookie in ipairs(live) do
  if kept <= max_cookies and bytes <= max_bytes then break end
  redis.call('HDEL', jar, cookie[1])
  kept = kept - 1
  bytes = bytes - cookie[3]
end
return kept
