-- heartbeat: a worker says it is alive, on the server's clock.
-- KEYS: 1 the crawl's workers ZSET (worker id -> ms of its last heartbeat),
--       2 this worker's HASH (what it reports: node, pid, counters)
-- ARGV: worker id, hash TTL ms, forget ms (drop ids silent that long), then
--       field, value pairs for the hash ('' alone: the worker is leaving).
-- Returns the server's time in ms.
local now = now_ms()
if ARGV[4] == '' and #ARGV == 4 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[2])
  return now
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]))
-- With no worker left to beat, the set itself goes once its newest entry is forgotten.
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local fields = {'beat', now}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return now
