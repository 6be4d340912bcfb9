-- recap: move one shard's allotment of a crawl-wide cap (crawler.control).
-- ARGV: base, field ('cap': done + leased may reach it; 'errcap': errors may),
--       target, grow (0 or 1).
-- The allotments over all shards must never sum past the cap, while each
-- shard claims against its own: so room is taken from shards first (grow 0)
-- and only then given to others (grow 1), from what the first step freed.
-- Taking is atomic with the shard's counters: an allotment never drops below
-- what the shard has used by then, and never rises in this step. Giving only
-- raises. Returns the allotment in force.
local ctl = ARGV[1] .. 'ctl'
local field, target, grow = ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1'
local current = tonumber(redis.call('HGET', ctl, field) or '')
if grow then
  if current and current >= target then return current end
  redis.call('HSET', ctl, field, target)
  return target
end
local used
if field == 'cap' then
  used = hnum(KEYS[7], 'done', 0) + hnum(KEYS[7], 'leased', 0)
else
  used = hnum(KEYS[7], 'errors', 0)
end
local allotted = math.max(target, used)
if current and current <= allotted then return current end
redis.call('HSET', ctl, field, allotted)
return allotted
