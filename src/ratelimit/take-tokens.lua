-- Token buckets: spends one token from each of KEYS, in order (a key may repeat).
-- ARGV[1] tokens per second, ARGV[2] burst. Uses the Redis clock so that every replica
-- spends from the same bucket the same way.
-- Returns {allowed (1/0), milliseconds until a token is back} for each key, flattened.
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ttl = math.ceil(burst * 1000 / rate) + 1000
local verdicts = {}
for _, key in ipairs(KEYS) do
  local bucket = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(bucket[1]) or burst
  local at = tonumber(bucket[2]) or now
  local available = math.min(burst, tokens + (now - at) * rate / 1000)
  local allowed = 0
  local wait = 0
  if available >= 1 then
    available = available - 1
    allowed = 1
  else
    wait = math.ceil((1 - available) * 1000 / rate)
  end
  redis.call('HSET', key, 'tokens', tostring(available), 'at', tostring(now))
  redis.call('PEXPIRE', key, ttl)
  verdicts[#verdicts + 1] = allowed
  verdicts[#verdicts + 1] = wait
end
return verdicts
