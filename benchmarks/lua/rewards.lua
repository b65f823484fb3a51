-- wrk script: POST /v1/rewards, one reward per recorded decision id (each id used once).
-- A thread that runs out of ids stops; every acknowledged reward is counted and, with
-- BENCH_RECORD_DIR, its decision id recorded (the benchmark looks each one up in the database).
local threads = {}
local id_dir = os.getenv("BENCH_ID_DIR")
local record_dir = os.getenv("BENCH_RECORD_DIR")
local nthreads = tonumber(os.getenv("BENCH_ID_FILES") or "1")
local key = os.getenv("BENCH_KEY")
local headers = {["Content-Type"] = "application/json", ["Authorization"] = key and ("Bearer " .. key) or nil}
local shared = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "summary.lua")

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  ids = {}
  acked = 0
  statuses = {}
  -- each thread has its own Lua state: the thread count comes from the environment
  local total = tonumber(os.getenv("BENCH_THREADS") or "1")
  for f = 1, nthreads do
    local h = io.open(id_dir .. "/ids-" .. f .. ".txt", "r")
    if h then
      local i = 0
      for line in h:lines() do
        i = i + 1
        if (i % total) == (tid % total) then table.insert(ids, line) end
      end
      h:close()
    end
  end
  pos = 0
  if record_dir then
    out = io.open(record_dir .. "/acks-" .. tid .. ".txt", "w")
  end
end

function request()
  pos = pos + 1
  local id = ids[pos]
  if id == nil then
    wrk.thread:stop()
    return wrk.format("GET", "/healthz")
  end
  local reward = (pos % 7 == 0) and "1" or "0"
  local body = '{"decision_id":"' .. id .. '","reward":' .. reward .. ',"metrics":{"latency_ms":' .. (pos % 50) .. '}}'
  return wrk.format("POST", "/v1/rewards", headers, body)
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    local id = string.match(body, '"decision_id":"([^"]+)"')
    if id then
      acked = acked + 1
      if out then out:write(id, "\n") end
    end
  else
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local acked_total = 0
  for _, t in ipairs(threads) do acked_total = acked_total + (t:get("acked") or 0) end
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"acked":%d,"status_errors":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d,"statuses":%s,"latency":%s}\n',
    summary.requests, summary.duration, acked_total, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
    shared.statuses(threads), shared.histogram(latency)))
end
