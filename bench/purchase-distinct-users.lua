-- wrk: POST /api/v1/sales/$SALE/purchase, each request as the next user of
-- $TOKENS_FILE (one JWT per line, from `seckill token bench --count N`), so
-- that every request is a distinct buyer. Use one wrk thread (-t1): threads
-- would each start at the first token.
local path = "/api/v1/sales/" .. os.getenv("SALE") .. "/purchase"
local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do
  tokens[#tokens + 1] = "Bearer " .. line
end
local next_token = 0

function request()
  next_token = next_token % #tokens + 1
  return wrk.format("POST", path, { ["Authorization"] = tokens[next_token] }, nil)
end
