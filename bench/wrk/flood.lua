-- A flood of bad tokens from many client IPs (X-Forwarded-For, the server trusts
-- 127.0.0.1 as its proxy), at a fixed rate per connection (FLOOD_DELAY_MS between
-- requests). Alternates a bad-checksum token with a well-formed unknown one taken in turn
-- from UNKNOWN_FILE (so each distinct unknown token is sent many times).
dofile((os.getenv("BENCH_DIR") or "bench") .. "/wrk/report.lua")
local delay_ms = tonumber(os.getenv("FLOOD_DELAY_MS") or "0")
local unknown = {}
for line in io.lines(os.getenv("UNKNOWN_FILE")) do
  if line ~= "" then unknown[#unknown + 1] = line end
end
local alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
local k = 0
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("seed", threads)
end
init = function(args)
  math.randomseed(os.time() + (seed or 0))
end
local function bad_checksum()
  local t = {}
  for j = 1, 38 do
    local c = math.random(1, 62)
    t[j] = alphabet:sub(c, c)
  end
  return "lkp_" .. table.concat(t)
end
request = function()
  k = k + 1
  local token
  if k % 2 == 0 then token = bad_checksum() else token = unknown[math.floor(k / 2) % #unknown + 1] end
  local ip = string.format("203.0.113.%d, 198.51.100.%d", k % 250 + 1, math.floor(k / 250) % 250 + 1)
  return wrk.format("GET", "/auth/verify", {
    ["Authorization"] = "Bearer " .. token,
    ["X-Forwarded-For"] = ip,
  })
end
if delay_ms > 0 then
  delay = function() return delay_ms end
end
