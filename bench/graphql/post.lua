-- wrk script for bench/graphql/run.sh: POSTs one GraphQL request (the JSON
-- body in the file named by $GQL_BODY_FILE) on every connection, and counts
-- answers that are not HTTP 200 with "data" and without "errors"
-- (printed at the end as "graphql_bad: N").
local f = assert(io.open(assert(os.getenv("GQL_BODY_FILE"), "GQL_BODY_FILE not set"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/graphql-response+json, application/json"

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
end

function response(status, headers, body)
  if status ~= 200 or not body:find('"data"', 1, true) or body:find('"errors"', 1, true) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local n = 0
  for _, t in ipairs(threads) do
    n = n + (t:get("bad") or 0)
  end
  io.write(string.format("graphql_bad: %d\n", n))
end
