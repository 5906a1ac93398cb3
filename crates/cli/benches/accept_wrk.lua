-- wrk script for the sustained accept load (issue 21): POST /v1/messages, a new recipient on
-- every request (a counter per wrk thread, offset by the thread's number), the API key from
-- the BZAPPER_KEY environment variable. See BENCHMARKS.md ("Sustained accept load").
local counter = 0
local offset = 0
local threads = 0

function setup(thread)
  thread:set("offset", threads * 100000000)
  threads = threads + 1
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("BZAPPER_KEY")
end

function request()
  counter = counter + 1
  local to = string.format("+55%011d", 20000000000 + offset + counter)
  return wrk.format(nil, "/v1/messages", nil, '{"to":"' .. to .. '","text":"load test"}')
end
