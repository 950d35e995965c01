-- Raises a log's counter to a floor, never lowers it: the next INCR then exceeds the floor.
-- A missing counter is created at the floor (the caller passes the largest stored seq).
-- KEYS[1]: the log's counter. ARGV[1]: the floor (an integer).
-- Returns the counter's value afterwards.
local floor = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]))
if current == nil or current < floor then
  redis.call('SET', KEYS[1], ARGV[1])
  return floor
end
return current
