-- POST a token creation (a `client` token in WORKSPACE_ID) with ADMIN_TOKEN.
dofile((os.getenv("BENCH_DIR") or "bench") .. "/wrk/report.lua")
local ws = os.getenv("WORKSPACE_ID")
local auth = "Bearer " .. os.getenv("ADMIN_TOKEN")
local k = 0
request = function()
  k = k + 1
  local body = string.format('{"name":"bench-%d","type":"client"}', k)
  return wrk.format("POST", "/api/v1/workspaces/" .. ws .. "/tokens", {
    ["Authorization"] = auth,
    ["Content-Type"] = "application/json",
  }, body)
end
