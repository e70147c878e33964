-- The running Redis process's run_id: it changes at every restart (and on a
-- promoted replica), which a snapshot or an AOF cannot carry over. A sale's
-- `run_id` field names the run under which its counts were last checked
-- against the order store (see `crate::reconcile`); a sale whose field names
-- another run is fenced: no purchase, no release, until a repair.
local function current_run_id()
  return string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
end
