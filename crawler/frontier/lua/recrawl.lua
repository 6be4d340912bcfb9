-- recrawl: queue again the done URLs of some hosts whose last fetch is no later
-- than a cutoff (recrawl = true keeps their state in v:<host>, see
-- crawler/recrawl.py). A URL queued for a revisit is marked ('*' before its
-- state) until its next result replaces the state, so running this again
-- while it waits does not queue it twice: one record a URL a visit.
-- ARGV: base, cutoff (unix seconds), limit and delay_ms (the host's policy if
--       its state was compacted away meanwhile), then hosts.
-- Returns the number of URLs queued.
-- A field is the URL, or 's'/'h' and its path on the host itself over https/http.
local function url_of(host, field)
  local mark = string.sub(field, 1, 2)
  if mark == 's/' then return 'https://' .. host .. string.sub(field, 2) end
  if mark == 'h/' then return 'http://' .. host .. string.sub(field, 2) end
  return field
end

local base = ARGV[1]
local cutoff = tonumber(ARGV[2])
local now = now_ms()
local total = 0
for i = 5, #ARGV do
  local host = ARGV[i]
  local vk = base .. 'v:' .. host
  local flat = redis.call('HGETALL', vk)
  local count = 0
  local known = {}
  for j = 1, #flat, 2 do
    local field, state = flat[j], flat[j + 1]
    local fetched, depth = string.match(state, '^(%d+)|%d+|%d+|(%d+)|')
    if fetched and tonumber(fetched) <= cutoff then
      redis.call('HSET', vk, field, '*' .. state)
      redis.call('RPUSH', base .. 'q:' .. host,
                 entry(base, host, 0, tonumber(depth), 0, url_of(host, field), known))
      count = count + 1
    end
  end
  if count > 0 then
    local hk = base .. 'h:' .. host
    redis.call('HSETNX', hk, 'limit', ARGV[3])
    redis.call('HSETNX', hk, 'delay', ARGV[4])
    redis.call('ZREM', base .. 'idle', host)
    refresh_ready(base, host, now)
    total = total + count
  end
end
if total > 0 then redis.call('HINCRBY', KEYS[7], 'queued', total) end
return total
