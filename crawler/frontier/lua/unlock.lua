-- unlock: delete a lock only if it still holds the caller's token. A GET and
-- a DEL sent apart could delete a lock another worker took in between.
-- ARGV: base, lock key, token. Returns 1 if the lock was released.
if redis.call('GET', ARGV[2]) == ARGV[3] then
  return redis.call('DEL', ARGV[2])
end
return 0
