-- Lifts a sale's fence (run_id.lua): the repair found that Redis holds at
-- least every unit the order store and the stream hold, under the run it
-- read before looking. If Redis restarted again since, what was checked is
-- gone: the fence stays.
-- KEYS[1] seckill:{S}:sale
-- ARGV the run_id the repair's comparison was made under
-- Returns 1 lifted (or already), 0 Redis restarted meanwhile, -1 unknown sale.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
if current_run_id() ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'run_id', ARGV[1])
return 1
