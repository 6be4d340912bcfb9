-- add: enqueue the URLs of one shard that were never seen before.
-- ARGV: base, max_pages_per_host (0 = no cap), nhosts,
--       then nhosts x (host, limit, delay_ms, names): the adder's policy,
--       kept only for hosts seen first and used while no policy table is
--       published; names (space-separated, politeness_key = "ip" only) are
--       host names seen on this address, whose overrides decide its policy,
--       then URLs x (bucket_hex, fingerprint, host, depth, hops, url); hops
--       counts the redirects that led to the URL
-- Returns {added, already_seen, over_host_cap}.
local base = ARGV[1]
local max_pages = tonumber(ARGV[2])
local nhosts = tonumber(ARGV[3])
local now = now_ms()
local i = 4
local NAMES_KEPT = 32  -- names of one address whose overrides count (more: throttled all the same)
for _ = 1, nhosts do
  local hk = base .. 'h:' .. ARGV[i]
  redis.call('HSETNX', hk, 'limit', ARGV[i + 1])
  redis.call('HSETNX', hk, 'delay', ARGV[i + 2])
  if ARGV[i + 3] ~= '' then
    local known = redis.call('HGET', hk, 'names') or ''
    local count, changed = select(2, string.gsub(known, '%S+', '')), false
    for name in string.gmatch(ARGV[i + 3], '%S+') do
      if count < NAMES_KEPT and not string.find(' ' .. known .. ' ', ' ' .. name .. ' ', 1, true) then
        known = (known == '') and name or (known .. ' ' .. name)
        count, changed = count + 1, true
      end
    end
    -- A new name may carry a stricter override: resolve the address again.
    if changed then redis.call('HSET', hk, 'names', known, 'pv', '') end
  end
  i = i + 4
end
local added, seen, capped = 0, 0, 0
local touched = {}
while i + 5 <= #ARGV do
  local bucket, fp, host, depth, hops, url =
    ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  i = i + 6
  local hk = base .. 'h:' .. host
  if max_pages > 0 and hnum(hk, 'pages', 0) >= max_pages then
    -- Over the per-host cap: not marked seen, so raising the cap later works.
    capped = capped + 1
  elseif redis.call('SADD', base .. 'seen:' .. bucket, fp) == 1 then
    push(base, host, 0, tonumber(depth), tonumber(hops), url, false)
    if max_pages > 0 then redis.call('HINCRBY', hk, 'pages', 1) end
    touched[host] = true
    added = added + 1
  else
    seen = seen + 1
  end
end
if added > 0 then
  redis.call('HINCRBY', KEYS[7], 'queued', added)
  redis.call('HINCRBY', KEYS[7], 'seen', added)
  for host in pairs(touched) do
    if redis.call('ZSCORE', KEYS[1], host) == false then
      refresh_ready(base, host, now)
    end
  end
end
return {added, seen, capped}
