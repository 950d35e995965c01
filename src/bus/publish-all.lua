-- Publishes a batch in one call: ARGV[i] on channel KEYS[i], in order, so one round trip
-- and one command carry a whole group commit to every subscribed replica.
for i, channel in ipairs(KEYS) do
  redis.call('PUBLISH', channel, ARGV[i])
end
return #KEYS
