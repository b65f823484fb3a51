-- Shared by the wrk scripts (loaded with dofile): the parts of the JSON summary line that the
-- benchmark merges across the wrk processes of several replicas.
local shared = {}

-- {"503":12,...}: answers other than 2xx by status, summed over the threads.
function shared.statuses(threads)
  local total = {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("statuses") or {}) do total[status] = (total[status] or 0) + n end
  end
  local parts = {}
  for status, n in pairs(total) do table.insert(parts, string.format('"%d":%d', status, n)) end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- [v1,n1,v2,n2,...]: every distinct latency (microseconds) and its count, so that percentiles
-- over several wrk processes come from the merged histogram instead of averaged percentiles.
function shared.histogram(latency)
  local parts = {}
  for i = 1, #latency do
    local value, count = latency(i)
    parts[#parts + 1] = string.format("%d,%d", value, count)
  end
  return "[" .. table.concat(parts, ",") .. "]"
end

return shared
