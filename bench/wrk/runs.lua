-- wrk script: POST /runs?wait=true with the prompts of one mix, and a check of every answer.
--
-- Set by the environment (bench/latency.sh sets them):
--   CRANE_BENCH_MIX = rule (default) | mixed | llm
--     rule:  "calculate 2+3 plus N", N counting up per request (the issue's rule-planned point)
--     mixed: the calculator and todo prompts of `crane bench` (incl. the assignment's own
--            "add a todo to buy milk, then show me all my tasks"), in turn
--     llm:   "what is 7 times 6 plus N" for a server planning with an LLM (N keeps the exact
--            plan cache from answering)
-- Prints the latency percentiles (p50, p90, p99, p99.9) in ms and how many answers were not a
-- completed run, so a benchmark that measured errors says so.
local mix = os.getenv("CRANE_BENCH_MIX") or "rule"
-- CRANE_BENCH_PLANNER: every run names this planner (variant or alias).
local planner = os.getenv("CRANE_BENCH_PLANNER")
local prompts = {
  "what is (41*7)+13",
  "add a todo to buy milk",
  "calculate 123456789 * 987654321",
  "add a todo to water the plants and then mark it done",
  "what is 7 times 6",
  "remind me to call mom",
  "0.1 + 0.2",
  "add a todo to buy milk, then show me all my tasks",
}
-- Numbers in prompts start at a random base per wrk process, so a measured run never repeats
-- a prompt of its warm-up (the exact plan cache would answer it).
math.randomseed(os.time() + math.floor(os.clock() * 1e6))
local n = math.random(1, 1000000000)
bad = 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  wrk.method = "POST"
  wrk.path = "/runs?wait=true"
  wrk.headers["Content-Type"] = "application/json"
  local key = os.getenv("CRANE_BENCH_KEY")
  if key and key ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. key
  end
end

function request()
  n = n + 1
  local prompt
  if mix == "mixed" then
    prompt = prompts[(n % #prompts) + 1]
  elseif mix == "llm" then
    prompt = "what is 7 times 6 plus " .. n
  else
    prompt = "calculate 2+3 plus " .. n
  end
  if planner and planner ~= "" then
    return wrk.format(nil, nil, nil, '{"prompt":"' .. prompt .. '","planner":"' .. planner .. '"}')
  end
  return wrk.format(nil, nil, nil, '{"prompt":"' .. prompt .. '"}')
end

function response(status, headers, body)
  -- An LLM-planned point counts only runs the model planned (a fallback to the rule planner
  -- would measure the wrong path).
  local planned = mix ~= "llm" or string.find(body, '"source":"llm"', 1, true)
  if status ~= 201 or not string.find(body, '"status":"completed"', 1, true) or not planned then
    bad = bad + 1
    if bad <= 3 then
      io.stderr:write("unexpected answer " .. status .. ": " .. string.sub(body, 1, 300) .. "\n")
    end
  end
end

function done(summary, latency, requests)
  local total_bad = 0
  for _, t in ipairs(threads) do
    total_bad = total_bad + (t:get("bad") or 0)
  end
  local secs = summary.duration / 1e6
  io.write(string.format(
    "RESULT requests=%d rps=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f not_completed=%d errors=%d\n",
    summary.requests, summary.requests / secs,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
    latency:percentile(99) / 1e3, latency:percentile(99.9) / 1e3, latency.max / 1e3,
    total_bad,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
