-- Writes a sale's hash once: a second call (another node, a retry) changes
-- nothing, so creating a sale is idempotent. A new sale holds nothing and is
-- checked as it stands (run_id: this run); one seeded again from the order
-- store after Redis lost it is fenced ('') until the repair has put its
-- orders back (`crate::reconcile`).
-- KEYS[1] seckill:{S}:sale
-- ARGV total, per_user_limit, starts_at_ms, ends_at_ms (0 = no end), payment_timeout_ms,
--      '1' new / '0' seeded
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
  'payment_timeout_ms', ARGV[5],
  'run_id', ARGV[6] == '1' and current_run_id() or '')
return 1
