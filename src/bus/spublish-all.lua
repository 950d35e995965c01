-- Publishes a batch of one hash slot in one call (a Redis Cluster runs a script only over
-- keys of one slot): ARGV[i] on shard channel KEYS[i], in order.
for i, channel in ipairs(KEYS) do
  redis.call('SPUBLISH', channel, ARGV[i])
end
return #KEYS
