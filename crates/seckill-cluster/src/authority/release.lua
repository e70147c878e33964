-- Puts an order's units back on sale, once: the order id goes into the
-- released set first, so a repeated release (a retried expiry, two
-- sweepers) changes nothing.
-- KEYS[1] seckill:{S}:sale  KEYS[2] seckill:{S}:buyers  KEYS[3] seckill:{S}:released
-- ARGV sale_id, order_id, user_id, quantity, repair run ('' = none)
-- Returns 1 released, 0 already released, -1 unknown sale, -2 fenced (Redis
-- restarted since the sale's counts were checked: it may not hold this
-- order at all, and giving its units back would sell them twice). The
-- repair, which found the order's reservation in Redis under this run,
-- passes the run and may release while the sale is fenced.
local sale = redis.call('HMGET', KEYS[1], 'sold', 'run_id')
local sold = tonumber(sale[1])
if not sold then
  return -1
end
local run = current_run_id()
if sale[2] ~= run and ARGV[5] ~= run then
  return -2
end
local sale_id, order_id, user = ARGV[1], ARGV[2], ARGV[3]
local quantity = tonumber(ARGV[4])
if not quantity or quantity < 1 or quantity % 1 ~= 0 then
  return redis.error_reply('ERR quantity must be a positive integer')
end
if redis.call('SISMEMBER', KEYS[3], order_id) == 1 then
  return 0
end
if quantity > sold then
  return redis.error_reply('ERR release of more units than were sold')
end
redis.call('SADD', KEYS[3], order_id)
redis.call('HINCRBY', KEYS[1], 'sold', -quantity)
if redis.call('HINCRBY', KEYS[2], user, -quantity) <= 0 then
  redis.call('HDEL', KEYS[2], user)
end
redis.call('PUBLISH', 'seckill:restock', sale_id)
return 1
