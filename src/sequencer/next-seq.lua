-- The next seq of one log: INCR of its counter, or -1 when the counter does not exist
-- (first use, or Redis lost it), so the caller seeds it from storage before taking a seq.
-- KEYS[1]: the log's counter.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
return redis.call('INCR', KEYS[1])
