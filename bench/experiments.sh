#!/usr/bin/env bash
# What a running A/B experiment costs a run, and how fast its analysis answers (issue 16).
#
#   bench/experiments.sh [--crane PATH] [--duration S] [--connections C]
#
# 1. Rule-planned runs ("calculate 2+3 plus N", POST /runs?wait=true) against one crane with
#    two rule variants, alternately with no experiment and with an experiment between them
#    (every run assigned an arm, its outcome recorded): runs/s, latency and the server's CPU
#    time per run, side by side. The server is pinned to core 0, wrk to core 1.
# 2. The experiment's per-arm totals are then raised to 1 000 000 runs (written straight into
#    the store's aggregate tables: the analysis reads only those, never the runs), and
#    GET /experiments/{name} (outcomes + analysis) is timed with wrk at 1 connection.
# Needs wrk, taskset and python3 (installs wrk with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

CRANE="${CRANE:-${CARGO_TARGET_DIR:-$HOME/.cache/crane/target}/release/crane}"
DURATION=10
WARMUP=2
CONNS=16
while [[ $# -gt 0 ]]; do
    case "$1" in
        --crane) CRANE="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --connections) CONNS="$2"; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ -x "$CRANE" ]] || { echo "no crane binary at $CRANE (cargo build --release -p crane, or --crane PATH)" >&2; exit 1; }
command -v wrk >/dev/null 2>&1 || apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }

WORK="$(mktemp -d)"
PID=""
cleanup() {
    [[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

cat >"$WORK/crane.toml" <<'CONF'
[[planners]]
name = "rules-a"
kind = "rule"
version = "1.0.0"

[[planners]]
name = "rules-b"
kind = "rule"
version = "2.0.0"
CONF
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:$PORT"
CRANE_LOG_FORMAT=json RUST_LOG=warn taskset -c 0 "$CRANE" serve --config "$WORK/crane.toml" \
    --data-dir "$WORK/data" --addr "127.0.0.1:$PORT" >"$WORK/crane.log" 2>&1 &
PID=$!
for _ in $(seq 1 200); do curl -fsS "$URL/health" >/dev/null 2>&1 && break; sleep 0.05; done
curl -fsS "$URL/health" >/dev/null || { cat "$WORK/crane.log" >&2; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
point() { # name
    CRANE_BENCH_MIX=rule taskset -c 1 wrk -t1 -c"$CONNS" -d"${WARMUP}s" -s bench/wrk/runs.lua "$URL" >/dev/null
    local t0 t1 out reqs
    t0="$(cpu_ticks)"
    out="$(CRANE_BENCH_MIX=rule taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 10s -s bench/wrk/runs.lua "$URL" | grep '^RESULT')"
    t1="$(cpu_ticks)"
    reqs="$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$out")"
    printf '%-16s c=%s %s %s\n' "$1" "$CONNS" "${out#RESULT }" \
        "$(awk -v t="$((t1 - t0))" -v r="$reqs" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "server_cpu_us_per_run=%.1f", t / hz * 1e6 / r }')"
}

echo "crane: $CRANE ($("$CRANE" --version)); ${DURATION}s per point after ${WARMUP}s warm-up; server on core 0, wrk on core 1"
point no_experiment
# The same runs naming one arm's variant: what planning with a named variant costs by itself.
CRANE_BENCH_PLANNER=rules-a point named_variant
export CRANE_BENCH_PLANNER=
curl -fsS -XPOST "$URL/experiments" -H 'content-type: application/json' \
    -d '{"name": "bench", "arms": [{"planner": "rules-a"}, {"planner": "rules-b"}]}' >/dev/null
point with_experiment
# Again in the other order: the VM's own drift between points shows next to the difference.
curl -fsS -XPOST "$URL/experiments/bench/stop" >/dev/null
point no_experiment_2
curl -fsS -XPOST "$URL/experiments" -H 'content-type: application/json' \
    -d '{"name": "bench-2", "arms": [{"planner": "rules-a"}, {"planner": "rules-b"}]}' >/dev/null
point with_experiment_2
sleep 1.5  # the outcome flush runs once a second

# Raise the totals to 1 000 000 runs per experiment (500 000 per arm), histogram included.
python3 - "$WORK/data/crane.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30)
with db:
    for arm in (0, 1):
        db.execute("""INSERT INTO experiment_arms (tenant, experiment, arm, runs, successes, cost_sum, cost_sq,
                      tokens, latency_sum_ms, latency_sq_ms, feedback_n, feedback_sum)
                      VALUES ('default', 'bench', ?, 500000, ?, 0, 0, 0, 250000, 200000, 1000, 800)
                      ON CONFLICT (tenant, experiment, arm) DO UPDATE SET runs = 500000,
                      successes = excluded.successes""", (arm, 400000 + arm * 1000))
        for bucket in range(0, 80):
            db.execute("""INSERT INTO experiment_latency (tenant, experiment, arm, bucket, n)
                          VALUES ('default', 'bench', ?, ?, 6250)
                          ON CONFLICT DO UPDATE SET n = 6250""", (arm, bucket))
PY
runs="$(curl -fsS "$URL/experiments/bench" | python3 -c 'import json,sys; e=json.load(sys.stdin); print(sum(a["runs"] for a in e["arms"]), e["analysis"]["decision"])')"
echo "experiment totals now: runs decision = $runs"
out="$(taskset -c 1 wrk -t1 -c1 -d"${DURATION}s" -s bench/wrk/get.lua "$URL/experiments/bench" | grep '^RESULT')"
printf '%-16s c=1 %s\n' "analysis_1M" "${out#RESULT }"
