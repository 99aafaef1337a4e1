-- wrk script: POST a planning-sized Chat Completions request straight to the mock model server
-- (the "bare mock" baseline that crane's LLM-planned runs are compared with).
local body_file = os.getenv("CRANE_BENCH_CHAT_BODY")
local body = '{"model":"bench","messages":[{"role":"user","content":"what is 7 times 6"}]}'
if body_file and body_file ~= "" then
  local f = io.open(body_file, "r")
  if f then body = f:read("*a"); f:close() end
end
wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
wrk.body = body

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format(
    "RESULT requests=%d rps=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f not_completed=0 errors=%d\n",
    summary.requests, summary.requests / secs,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
    latency:percentile(99) / 1e3, latency:percentile(99.9) / 1e3, latency.max / 1e3,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
