-- Fences a sale (run_id.lua) that Redis knows: its purchases and releases
-- are refused until a repair has checked it again. A consumer calls it when
-- Redis no longer holds entries it read and has just stored as rows: Redis
-- lost them after it read them (it restarted), perhaps after the repair
-- that followed the restart had already compared.
-- KEYS[1] seckill:{S}:sale
-- Returns 1 fenced, 0 unknown sale.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'run_id', '')
return 1
