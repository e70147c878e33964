-- Writes a sale's hash once: a second call (another node, a retry) changes
-- nothing, so creating a sale is idempotent.
-- KEYS[1] seckill:{S}:sale
-- ARGV total, per_user_limit, starts_at_ms, ends_at_ms (0 = no end), payment_timeout_ms
-- Returns 1 when written, 0 when the sale already existed.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1],
  'total', ARGV[1],
  'sold', 0,
  'per_user_limit', ARGV[2],
  'starts_at_ms', ARGV[3],
  'ends_at_ms', ARGV[4],
  'payment_timeout_ms', ARGV[5])
return 1
