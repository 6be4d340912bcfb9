-- proxy: add one worker's proxy counts to the crawl's proxies hash, rest the
-- proxies that failed too often, and answer with every proxy's rest left.
-- Safe to send twice: a report carries the worker's sequence number, and one
-- at or below the last one applied counts nothing (its answer is still given).
-- Fields per proxy (its URL, password hidden): '<p>|requests', '|failures',
-- '|row' (failures in a row, as reports arrive), '|rests' (rests in a row),
-- '|rested' (rests in all), '|until' (ms, Redis's clock); 'w:<worker>' is
-- the last sequence number applied from that worker.
-- KEYS: 1 the crawl's proxies HASH
-- ARGV: worker, seq, burst, rest_base_ms, rest_max_ms, then per proxy: name,
--       requests, failures, succeeded (0/1), failures after the last success,
--       rest_now (0/1: the worker could not connect to it)
-- Returns {name, ms of rest left, ...} for every proxy in the hash.
local h = KEYS[1]
local now = now_ms()
local seq = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local base_ms, max_ms = tonumber(ARGV[4]), tonumber(ARGV[5])
local fresh = seq > hnum(h, 'w:' .. ARGV[1], -1)
if fresh then
  redis.call('HSET', h, 'w:' .. ARGV[1], seq)
  for i = 6, #ARGV - 5, 6 do
    local p = ARGV[i]
    redis.call('HINCRBY', h, p .. '|requests', ARGV[i + 1])
    redis.call('HINCRBY', h, p .. '|failures', ARGV[i + 2])
    local resting = hnum(h, p .. '|until', 0) > now
    local row
    if ARGV[i + 3] == '1' then
      row = tonumber(ARGV[i + 4])
      redis.call('HSET', h, p .. '|row', row)
      if not resting then redis.call('HSET', h, p .. '|rests', 0) end
    else
      row = redis.call('HINCRBY', h, p .. '|row', ARGV[i + 4])
    end
    if (row >= burst or ARGV[i + 5] == '1') and not resting then
      local rests = redis.call('HINCRBY', h, p .. '|rests', 1)
      local rest = math.min(base_ms * 2 ^ (rests - 1), max_ms)
      redis.call('HSET', h, p .. '|until', string.format('%d', now + rest), p .. '|row', 0)
      redis.call('HINCRBY', h, p .. '|rested', 1)
    end
  end
end
local out = {}
local all = redis.call('HGETALL', h)
for i = 1, #all, 2 do
  local name = string.match(all[i], '^(.*)|until$')
  if name then
    out[#out + 1] = name
    out[#out + 1] = math.max(0, tonumber(all[i + 1]) - now)
  end
end
return out
