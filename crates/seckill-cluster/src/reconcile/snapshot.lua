-- One instant of a sale, for `seckill reconcile`: its stock, the id of the
-- last reservation entry, and the orders whose units came back, read in one
-- step so that no purchase or release falls between the reads. The entries
-- up to that id are read afterwards, a chunk at a time: the stream only
-- grows, so they are still exactly the reservations of this instant.
-- KEYS[1] seckill:{S}:sale  KEYS[2] seckill:{S}:reservations  KEYS[3] seckill:{S}:released
-- Returns {total, sold, last_entry_id ('0-0': none yet), {released order ids}},
-- or {} for an unknown sale.
local sale = redis.call('HMGET', KEYS[1], 'total', 'sold')
if not sale[1] then
  return {}
end
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local last_id = '0-0'
if last[1] then
  last_id = last[1][1]
end
return {sale[1], sale[2], last_id, redis.call('SMEMBERS', KEYS[3])}
