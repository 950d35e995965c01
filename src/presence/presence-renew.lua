-- Renews one replica's lease: one call whatever the number of its connections.
-- KEYS[1]: the replicas (replica id -> lease expiry, ms on Redis's clock). ARGV[1]: the
-- prefix of the replicas' counts, ARGV[2]: this replica, ARGV[3]: the lease in ms.
-- Also forgets replicas whose lease ran out (their counts expired with it).
-- Returns 1 when the lease had lapsed or was unknown (the replica must write its leases
-- back), else 0.
local replicas, base, me = KEYS[1], ARGV[1], ARGV[2]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local before = tonumber(redis.call('ZSCORE', replicas, me))
local expiry = now + tonumber(ARGV[3])
redis.call('ZADD', replicas, expiry, me)
for _, kind in ipairs({ ':s', ':a', ':u' }) do redis.call('PEXPIREAT', base .. me .. kind, expiry) end
redis.call('ZREMRANGEBYSCORE', replicas, '-inf', now)
if before and before > now then return 0 end
return 1
