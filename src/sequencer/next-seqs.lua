-- Takes seqs for several logs at once: KEYS[i] is a log's counter, ARGV[i] how many seqs
-- to take from it. Returns, per counter, the last seq taken (the caller owns the ARGV[i]
-- seqs ending there), or -1 when the counter does not exist (first use, or Redis lost it):
-- the caller seeds it from storage and asks again.
local last = {}
for i, counter in ipairs(KEYS) do
  if redis.call('EXISTS', counter) == 0 then
    last[i] = -1
  else
    last[i] = redis.call('INCRBY', counter, ARGV[i])
  end
end
return last
