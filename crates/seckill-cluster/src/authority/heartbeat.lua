-- A node says it is alive until now + ttl (Redis' clock, the same one the
-- reservations use), expired nodes are dropped, and the live ones counted.
-- KEYS[1] seckill:nodes
-- ARGV node_id, ttl_ms
-- Returns {live nodes (this one included), Redis' unix ms}: the node's
-- reading of the cluster's clock (crate::clock).
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZADD', KEYS[1], string.format('%.0f', now + tonumber(ARGV[2])), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
return {redis.call('ZCARD', KEYS[1]), string.format('%.0f', now)}
