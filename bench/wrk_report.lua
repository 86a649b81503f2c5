-- wrk script: POST the body in env BENCH_BODY with optional env BENCH_AUTH
-- (a bearer key) and env BENCH_HEADERS (extra "Name: value" lines, one per
-- line, for gateways that need their own headers), and print one JSON summary
-- line (latencies in microseconds).
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("BENCH_AUTH")
if auth ~= nil and auth ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. auth
end
local extra = os.getenv("BENCH_HEADERS")
if extra ~= nil then
  for line in extra:gmatch("[^\n]+") do
    local name, value = line:match("^([^:]+):%s*(.*)$")
    if name == nil then
      error("BENCH_HEADERS: not a 'Name: value' line: " .. line)
    end
    wrk.headers[name] = value
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"socket_errors":%d,"non_2xx":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
