-- Login buckets: with ARGV[3] = 'attempt', spends one token from every bucket in KEYS if each
-- holds a whole one, else spends nothing; with 'refund', gives one back to each (up to the
-- burst). ARGV[1] burst, ARGV[2] ms per token. Runs on the Redis clock, so every replica
-- counts alike.
-- Returns {allowed (1/0), ms until the emptiest bucket holds a token}.
local burst = tonumber(ARGV[1])
local refill = tonumber(ARGV[2])
local mode = ARGV[3]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ttl = burst * refill + 1000
local tokens = {}
local short = burst
for i, key in ipairs(KEYS) do
  local bucket = redis.call('HMGET', key, 'tokens', 'at')
  local held = tonumber(bucket[1]) or burst
  local at = tonumber(bucket[2]) or now
  tokens[i] = math.min(burst, held + math.max(0, now - at) / refill)
  if tokens[i] < short then short = tokens[i] end
end
local change = 1
if mode == 'attempt' then
  if short < 1 then
    return {0, math.ceil((1 - short) * refill)}
  end
  change = -1
end
for i, key in ipairs(KEYS) do
  redis.call('HSET', key, 'tokens', tostring(math.min(burst, tokens[i] + change)), 'at', tostring(now))
  redis.call('PEXPIRE', key, ttl)
end
return {1, 0}
