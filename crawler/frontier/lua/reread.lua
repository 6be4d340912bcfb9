-- reread: queue sitemaps to be read, again if they were read before (crawl
-- seed --sitemap on a crawl with recrawl = true). A sitemap's lastmods are
-- what crawl recrawl --changed-since goes by, so one read long ago must be
-- readable again; dedup (add.lua) would drop it. A sitemap given again while
-- it still waits in its queue is read twice: two records, each a visit.
-- The same call sent twice queues nothing the second time: it carries a
-- call id (done:<call id>, see _lib.lua).
-- ARGV: base, call id, then 7 x (host, limit, delay_ms, bucket_hex,
--       fingerprint, url, hops: the sitemap's mark, leases.py SITEMAP_HOPS).
-- Returns {queued, read_before}.
local base = ARGV[1]
local first = reply_of_first_run(base, ARGV[2])
if first then
  local q, b = string.match(first, '^(%d+)|(%d+)$')
  return {tonumber(q), tonumber(b)}
end
local now = now_ms()
local queued, before = 0, 0
for i = 3, #ARGV, 7 do
  local host, url = ARGV[i], ARGV[i + 5]
  if redis.call('SADD', base .. 'seen:' .. ARGV[i + 3], ARGV[i + 4]) == 0 then
    before = before + 1
  else
    redis.call('HINCRBY', KEYS[7], 'seen', 1)
  end
  enqueue(base, host, 0, {entry(base, host, 0, 0, tonumber(ARGV[i + 6]), url)}, false)
  queue_revisits_done(base, host, 1, ARGV[i + 1], ARGV[i + 2], now)
  queued = queued + 1
end
if queued > 0 then redis.call('HINCRBY', KEYS[7], 'queued', queued) end
keep_reply(base, ARGV[2], string.format('%d|%d', queued, before))
return {queued, before}
