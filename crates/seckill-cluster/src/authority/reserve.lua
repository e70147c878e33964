-- The whole purchase decision, atomically: the Idempotency-Key's earlier
-- answer (whatever the sale's state now), the phase (by Redis' clock), the
-- per-user limit, the stock; then the deduction and the reservation's
-- stream entry, in one step.
-- KEYS[1] seckill:{S}:sale  KEYS[2] seckill:{S}:buyers
-- KEYS[3] seckill:{S}:keys  KEYS[4] seckill:{S}:reservations
-- ARGV sale_id, user_id, quantity, order_id, idempotency_key ('' = none)
-- Returns {status, remaining[, order_id, expires_at_ms]}; remaining is
-- total - sold after this call, so every answer tells the node the stock.
-- A fenced sale (Redis restarted since its counts were checked, run_id.lua)
-- answers {'unverified', 0} before anything else: its counts, keys
-- included, may be older than the orders.
local sale = redis.call('HMGET', KEYS[1], 'total', 'sold', 'per_user_limit',
  'starts_at_ms', 'ends_at_ms', 'payment_timeout_ms', 'run_id')
if not sale[1] then
  return {'unknown_sale', 0}
end
if sale[7] ~= current_run_id() then
  return {'unverified', 0}
end
local total, sold, limit = tonumber(sale[1]), tonumber(sale[2]), tonumber(sale[3])
local starts_at, ends_at, timeout = tonumber(sale[4]), tonumber(sale[5]), tonumber(sale[6])
local sale_id, user, order_id, key = ARGV[1], ARGV[2], ARGV[4], ARGV[5]
local quantity = tonumber(ARGV[3])
if not quantity or quantity < 1 or quantity % 1 ~= 0 then
  return redis.error_reply('ERR quantity must be a positive integer')
end
local remaining = total - sold

local key_field = user .. '\n' .. key
if key ~= '' then
  local answer = redis.call('HGET', KEYS[3], key_field)
  if answer then
    -- Written again on purpose: this call then counts as a write, so a
    -- durability wait after it (WAIT/WAITAOF on this connection) also
    -- covers the earlier reservation this answer repeats.
    redis.call('HSET', KEYS[3], key_field, answer)
    local space = string.find(answer, ' ', 1, true)
    return {'duplicate', remaining, string.sub(answer, 1, space - 1),
      tonumber(string.sub(answer, space + 1))}
  end
end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
if now < starts_at then
  return {'not_started', remaining}
end
if ends_at > 0 and now >= ends_at then
  return {'ended', remaining}
end

local held = tonumber(redis.call('HGET', KEYS[2], user) or '0')
if held + quantity > limit then
  return {'limit_reached', remaining}
end
if quantity > remaining then
  return {'sold_out', remaining}
end

-- Numbers are formatted here: Redis would print large ones as 1.8e+12.
local function int(n) return string.format('%.0f', n) end
local expires_at = now + timeout
redis.call('HINCRBY', KEYS[1], 'sold', quantity)
redis.call('HINCRBY', KEYS[2], user, quantity)
if key ~= '' then
  redis.call('HSET', KEYS[3], key_field, order_id .. ' ' .. int(expires_at))
end
redis.call('XADD', KEYS[4], '*',
  'order_id', order_id,
  'sale_id', sale_id,
  'user_id', user,
  'quantity', ARGV[3],
  'idempotency_key', key,
  'created_at_ms', int(now),
  'expires_at_ms', int(expires_at))
remaining = remaining - quantity
if remaining == 0 then
  redis.call('PUBLISH', 'seckill:sold_out', sale_id)
end
return {'reserved', remaining, order_id, expires_at}
