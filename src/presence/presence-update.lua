-- Opens and closes one replica's connection leases, in the order given, in one atomic step:
-- each open is checked against the caps (counted over every live replica) and counted.
-- KEYS[1]: the replicas, a sorted set of replica id -> lease expiry (ms, Redis's clock).
-- ARGV[1]: the prefix of the replicas' counts (`<prefix>{presence}:r:`), ARGV[2]: this replica,
-- ARGV[3]: the most connections per session, ARGV[4]: per address; then, per operation,
-- 'open' or 'close', the session id, the address ('' for none) and the user id.
-- A replica's counts are three hashes, `<base><replica>:s|a|u`: session, address and user ->
-- open connections there; they expire with the replica's lease. (Their names are built here:
-- every key of presence shares the `{presence}` hash tag, so a cluster keeps them on one slot.)
-- Returns -1 and changes nothing when this replica's lease has lapsed (it must write its
-- leases back first); else a code per operation: 1 done, 2 refused by the session cap,
-- 3 refused by the address cap.
local replicas, base, me = KEYS[1], ARGV[1], ARGV[2]
local max_session, max_address = tonumber(ARGV[3]), tonumber(ARGV[4])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local expiry = tonumber(redis.call('ZSCORE', replicas, me))
if not expiry or expiry <= now then return -1 end
local live = redis.call('ZRANGE', replicas, '(' .. now, '+inf', 'BYSCORE')

local function held(kind, field)
  local n = 0
  for _, replica in ipairs(live) do
    n = n + (tonumber(redis.call('HGET', base .. replica .. kind, field)) or 0)
  end
  return n
end

local function add(key, field, delta)
  if redis.call('HINCRBY', key, field, delta) <= 0 then redis.call('HDEL', key, field) end
end

local sessions, addresses, users = base .. me .. ':s', base .. me .. ':a', base .. me .. ':u'
local codes = {}
for i = 5, #ARGV, 4 do
  local op, session, address, user = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local code = 1
  if op == 'open' then
    if held(':s', session) >= max_session then
      code = 2
    elseif address ~= '' and held(':a', address) >= max_address then
      code = 3
    end
  end
  if code == 1 then
    local delta = op == 'open' and 1 or -1
    add(sessions, session, delta)
    if address ~= '' then add(addresses, address, delta) end
    add(users, user, delta)
  end
  codes[#codes + 1] = code
end
for _, key in ipairs({ sessions, addresses, users }) do redis.call('PEXPIREAT', key, expiry) end
return codes
