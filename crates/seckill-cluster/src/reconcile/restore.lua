-- Puts back a reservation Redis lost (it restarted without the write, e.g.
-- with no AOF) while the order store keeps its order: the units, the
-- buyer's holding, the Idempotency-Key's answer and the stream entry, as
-- reserve.lua wrote them, without its checks (the order exists already).
-- Once per order: the id goes into the restored set first, so a second
-- repair (another operator, a retry) changes nothing. An order that no
-- longer holds stock (expired or cancelled meanwhile) comes back already
-- released: its entry and key answer, its id in the released set, no units,
-- so that a release sent later gives nothing back twice.
-- KEYS[1] seckill:{S}:sale  KEYS[2] seckill:{S}:buyers  KEYS[3] seckill:{S}:keys
-- KEYS[4] seckill:{S}:reservations  KEYS[5] seckill:{S}:restored
-- KEYS[6] seckill:{S}:released
-- ARGV order_id, sale_id, user_id, quantity, idempotency_key ('' = none),
--      created_at_ms, expires_at_ms, '1' released / '0' holds stock
-- Returns 1 restored, 0 already restored, -1 unknown sale.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
local order_id, user, key = ARGV[1], ARGV[3], ARGV[5]
local quantity = tonumber(ARGV[4])
if not quantity or quantity < 1 or quantity % 1 ~= 0 then
  return redis.error_reply('ERR quantity must be a positive integer')
end
if redis.call('SADD', KEYS[5], order_id) == 0 then
  return 0
end
if ARGV[8] == '1' then
  redis.call('SADD', KEYS[6], order_id)
else
  redis.call('HINCRBY', KEYS[1], 'sold', quantity)
  redis.call('HINCRBY', KEYS[2], user, quantity)
end
if key ~= '' then
  redis.call('HSETNX', KEYS[3], user .. '\n' .. key, order_id .. ' ' .. ARGV[7])
end
redis.call('XADD', KEYS[4], '*',
  'order_id', order_id,
  'sale_id', ARGV[2],
  'user_id', user,
  'quantity', ARGV[4],
  'idempotency_key', key,
  'created_at_ms', ARGV[6],
  'expires_at_ms', ARGV[7])
return 1
