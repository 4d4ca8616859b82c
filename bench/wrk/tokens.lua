-- GET `path` with `Authorization: Bearer <token>`, a different token per request, taken
-- from TOKENS_FILE (one per line). Each wrk thread starts at another offset and walks the
-- file with a large odd stride, so all tokens are used and neighbours are far apart.
-- Env: TOKENS_FILE, TOKENS_PATH (default /auth/verify), TOKENS_LIMIT (use only the first N),
-- TOKENS_SKIP (below).
dofile((os.getenv("BENCH_DIR") or "bench") .. "/wrk/report.lua")
local path = os.getenv("TOKENS_PATH") or "/auth/verify"
local limit = tonumber(os.getenv("TOKENS_LIMIT") or "0")
local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do
  if line ~= "" then
    tokens[#tokens + 1] = line
    if limit > 0 and #tokens >= limit then break end
  end
end
local n = #tokens
local i = 0
local stride = 7919
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("offset", threads * 104729)
end
-- TOKENS_SKIP: steps each thread already walked in earlier runs (the warm passes continue
-- where the last one stopped instead of walking the same tokens again).
local skip = tonumber(os.getenv("TOKENS_SKIP") or "0")
init = function(args)
  i = ((offset or 0) + skip * stride) % n
end
request = function()
  i = (i + stride) % n
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. tokens[i + 1] })
end
