-- forget_robots: delete stored robots.txt verdicts (`crawl config set` of
-- user_agent, allow_private or allow_cidrs: they were made for the old product
-- token or address policy), and the origins' failure counts; the next URL of
-- each origin fetches robots.txt again. The caller finds the origins (SCAN of
-- robots:*) and sends them in batches. Deleting twice is deleting once.
-- ARGV: base, origin...
-- Returns the number of verdicts deleted.
local base = ARGV[1]
local forgotten = 0
for i = 2, #ARGV do
  forgotten = forgotten + redis.call('DEL', base .. 'robots:' .. ARGV[i])
  redis.call('DEL', base .. 'robots_fails:' .. ARGV[i])
end
return forgotten
