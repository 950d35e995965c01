-- Writes one replica's counts back from what it holds (after its lease lapsed), in chunks.
-- KEYS[1]: the replicas. ARGV[1]: the prefix of the replicas' counts, ARGV[2]: this replica,
-- ARGV[3]: the lease in ms, ARGV[4]: '1' for the first chunk (which drops what was there);
-- then triples: 's', 'a' or 'u' (session, address, user), the field, its count.
-- Renews the lease too: other replicas count these connections again at once.
local replicas, base, me = KEYS[1], ARGV[1], ARGV[2]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local expiry = now + tonumber(ARGV[3])
local keys = { s = base .. me .. ':s', a = base .. me .. ':a', u = base .. me .. ':u' }
if ARGV[4] == '1' then redis.call('DEL', keys.s, keys.a, keys.u) end
redis.call('ZADD', replicas, expiry, me)
for i = 5, #ARGV, 3 do redis.call('HSET', keys[ARGV[i]], ARGV[i + 1], ARGV[i + 2]) end
for _, key in pairs(keys) do redis.call('PEXPIREAT', key, expiry) end
return 1
