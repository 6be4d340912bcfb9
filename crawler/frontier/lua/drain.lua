-- drain: acknowledge results a drain has written to its file (and fsynced),
-- then delete every entry that all consumer groups have acknowledged (so a
-- downstream reader with its own group never loses a result it has not read).
-- ARGV: base, group, entry ids...
-- Returns {acknowledged, deleted}.
local acked = 0
if #ARGV > 2 then
  acked = redis.call('XACK', KEYS[6], ARGV[2], unpack(ARGV, 3))
end
local low = acknowledged_until(KEYS[6])
local deleted = 0
if low then deleted = redis.call('XTRIM', KEYS[6], 'MINID', low) end
return {acked, deleted}
