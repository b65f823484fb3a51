-- wrk script: POST /v1/decisions with a new unit id on every request.
-- Optionally records every acknowledged decision inside the experiment (its id) into a per-thread
-- file: the reward phase rewards them, and the benchmark looks each one up in the database.
local counter = 0
local threads = {}
local experiment = os.getenv("BENCH_EXPERIMENT") or "bench"
local record_dir = os.getenv("BENCH_RECORD_DIR")
local key = os.getenv("BENCH_KEY")
local headers = {["Content-Type"] = "application/json", ["Authorization"] = key and ("Bearer " .. key) or nil}
local shared = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "summary.lua")

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  tid = tid or 0
  acked = 0
  outside = 0
  statuses = {}
  if record_dir then
    out = io.open(record_dir .. "/ids-" .. tid .. ".txt", "w")
  end
end

function request()
  counter = counter + 1
  local body = '{"experiment":"' .. experiment .. '","unit":"t' .. tid .. "-" .. counter .. '"}'
  return wrk.format("POST", "/v1/decisions", headers, body)
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    acked = acked + 1
    if string.find(body, '"in_experiment":false', 1, true) then
      outside = outside + 1
    elseif out then
      local id = string.match(body, '"decision_id":"([^"]+)"')
      if id then out:write(id, "\n") end
    end
  else
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local acked_total, outside_total = 0, 0
  for _, t in ipairs(threads) do
    acked_total = acked_total + (t:get("acked") or 0)
    outside_total = outside_total + (t:get("outside") or 0)
  end
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"acked":%d,"outside":%d,"status_errors":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d,"statuses":%s,"latency":%s}\n',
    summary.requests, summary.duration, acked_total, outside_total, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
    shared.statuses(threads), shared.histogram(latency)))
end
