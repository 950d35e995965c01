-- Which users hold a connection on a live replica.
-- KEYS[1]: the replicas. ARGV[1]: the prefix of the replicas' counts; ARGV[2] '1' to list
-- every online user (the rest is ignored), else '0' followed by user ids.
-- Returns the online user ids (each once), from those given or all of them.
local replicas, base = KEYS[1], ARGV[1]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local live = redis.call('ZRANGE', replicas, '(' .. now, '+inf', 'BYSCORE')
local seen, online = {}, {}
local function found(user)
  if not seen[user] then
    seen[user] = true
    online[#online + 1] = user
  end
end
if ARGV[2] == '1' then
  for _, replica in ipairs(live) do
    for _, user in ipairs(redis.call('HKEYS', base .. replica .. ':u')) do found(user) end
  end
else
  for i = 3, #ARGV do
    for _, replica in ipairs(live) do
      if redis.call('HEXISTS', base .. replica .. ':u', ARGV[i]) == 1 then
        found(ARGV[i])
        break
      end
    end
  end
end
return online
