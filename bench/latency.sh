#!/usr/bin/env bash
# Tail latency and throughput of whole runs over HTTP, the way issue 14 measures them: the
# server pinned to core 0, the load generator (wrk) and the mock model server (nginx) on core 1,
# a fresh durable data dir per point, a warm-up before each measured point.
#
#   bench/latency.sh [--crane PATH] [--duration S] [--warmup S] [POINT...]
#
# Points (default: all but memory):
#   health1   GET /health at 1 connection: the floor of the HTTP stack on this machine
#   rule1     rule-planned "calculate 2+3 plus N" at 1 connection
#   rule16    the same at 16 connections
#   mock1     the bare mock model server at 1 connection (a planning-sized chat request)
#   llm1      LLM-planned runs (crane → the nginx mock) at 1 connection
#   mock16    the bare mock at 16 connections
#   llm16     LLM-planned runs at 16 connections
#   mixed32   the mixed calculator/todo prompts at 32 connections
#   memory    mixed prompts at 32 connections until --runs runs completed (default 1 000 000),
#             the server's RSS printed every 10 s
# Each point prints one line: requests, runs/s, p50/p90/p99/p99.9/max in ms, answers that were
# not a completed run, socket errors; plus the server's CPU time per run.
# Needs wrk, nginx and taskset (Debian: wrk nginx-light util-linux); installs wrk and nginx
# with apt-get when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

CRANE="${CRANE:-${CARGO_TARGET_DIR:-$HOME/.cache/crane/target}/release/crane}"
DURATION=10
WARMUP=2
RUNS=1000000
POINTS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --crane) CRANE="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --warmup) WARMUP="$2"; shift 2 ;;
        --runs) RUNS="$2"; shift 2 ;;
        -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
        *) POINTS+=("$1"); shift ;;
    esac
done
[[ ${#POINTS[@]} -gt 0 ]] || POINTS=(health1 rule1 rule16 mock1 llm1 mock16 llm16 mixed32)
[[ -x "$CRANE" ]] || { echo "no crane binary at $CRANE (cargo build --release -p crane, or --crane PATH)" >&2; exit 1; }

need() { command -v "$1" >/dev/null 2>&1 || command -v "/usr/sbin/$1" >/dev/null 2>&1; }
if ! need wrk || ! need nginx; then
    echo "installing wrk and nginx-light (apt-get)" >&2
    apt-get install -y wrk nginx-light >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk nginx-light >/dev/null; }
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

WORK="$(mktemp -d)"
SERVER_PID=""
NGINX_PID=""
cleanup() {
    [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
    [[ -n "$NGINX_PID" ]] && kill "$NGINX_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The mock model server: nginx answering every chat completion at once with one valid plan.
MOCK_PORT="$(free_port)"
# nginx reads \\ in a quoted string as \, so the JSON escapes of the content survive.
PLAN='{\\"steps\\":[{\\"tool\\":\\"calculator\\",\\"input\\":{\\"expression\\":\\"7*6\\"},\\"reasoning\\":\\"multiply\\"}]}'
CHAT="{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion\",\"model\":\"bench\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"$PLAN\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":900,\"completion_tokens\":30,\"total_tokens\":930}}"
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$MOCK_PORT;
        location /v1/chat/completions {
            default_type application/json;
            return 200 '$CHAT';
        }
    }
}
CONF
taskset -c 1 "$NGINX" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" >/dev/null 2>&1 &
NGINX_PID=$!

# A planning-sized request body for the bare-mock baseline (what crane sends is ~8 KB).
python3 - "$WORK/chat.json" <<'PY'
import json, sys
system = "You plan tool calls. " + ("Tools: calculator(expression), todo_add(title), todo_list(), todo_complete(id). " * 60)
body = {"model": "bench", "messages": [{"role": "system", "content": system[:7600]},
        {"role": "user", "content": "what is 7 times 6 plus 1"}],
        "response_format": {"type": "json_object"}, "temperature": 0}
open(sys.argv[1], "w").write(json.dumps(body))
PY

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

start_crane() { # $1 = llm|rule
    local dir="$WORK/data-$RANDOM$RANDOM" port
    port="$(free_port)"
    local env=(CRANE_LOG_FORMAT=json RUST_LOG=warn)
    if [[ "$1" == llm ]]; then
        env+=(CRANE_LLM_BASE_URL="http://127.0.0.1:$MOCK_PORT/v1" CRANE_LLM_MODEL=bench CRANE_LLM_API_KEY=sk-bench)
    fi
    env "${env[@]}" taskset -c 0 "$CRANE" serve --data-dir "$dir" --addr "127.0.0.1:$port" >"$WORK/crane.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 200); do
        curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
        sleep 0.05
    done
    curl -fsS "http://127.0.0.1:$port/health" >/dev/null || { cat "$WORK/crane.log" >&2; exit 1; }
    URL="http://127.0.0.1:$port"
}
stop_crane() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

wrk_point() { # name conns mix url script
    local name="$1" conns="$2" mix="$3" url="$4" script="$5"
    local out t0 t1 reqs
    CRANE_BENCH_MIX="$mix" CRANE_BENCH_CHAT_BODY="$WORK/chat.json" \
        taskset -c 1 wrk -t1 -c"$conns" -d"${WARMUP}s" -s "$script" "$url" >/dev/null
    [[ -n "$SERVER_PID" ]] && t0="$(cpu_ticks "$SERVER_PID")"
    out="$(CRANE_BENCH_MIX="$mix" CRANE_BENCH_CHAT_BODY="$WORK/chat.json" \
        taskset -c 1 wrk -t1 -c"$conns" -d"${DURATION}s" --timeout 10s -s "$script" "$url" | grep '^RESULT')"
    local extra=""
    if [[ -n "$SERVER_PID" ]]; then
        t1="$(cpu_ticks "$SERVER_PID")"
        reqs="$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$out")"
        extra="$(awk -v t="$((t1 - t0))" -v r="$reqs" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (r > 0) printf " server_cpu_us_per_run=%.1f", t / hz * 1e6 / r }')"
        extra+=" rss_mib=$(rss_mib "$SERVER_PID")"
    fi
    printf '%-8s c=%-3s %s%s\n' "$name" "$conns" "${out#RESULT }" "$extra"
}

echo "crane: $CRANE ($("$CRANE" --version)); duration ${DURATION}s after ${WARMUP}s warm-up; server on core 0, wrk + nginx on core 1"
for point in "${POINTS[@]}"; do
    case "$point" in
        health1)
            start_crane rule
            wrk_point "$point" 1 - "$URL/health" bench/wrk/get.lua
            stop_crane ;;
        rule1|rule16)
            start_crane rule
            wrk_point "$point" "${point#rule}" rule "$URL" bench/wrk/runs.lua
            stop_crane ;;
        llm1|llm16)
            start_crane llm
            wrk_point "$point" "${point#llm}" llm "$URL" bench/wrk/runs.lua
            stop_crane ;;
        mock1|mock16)
            wrk_point "$point" "${point#mock}" - "http://127.0.0.1:$MOCK_PORT" bench/wrk/chat.lua ;;
        mixed32)
            start_crane rule
            wrk_point "$point" 32 mixed "$URL" bench/wrk/runs.lua
            stop_crane ;;
        memory)
            start_crane rule
            echo "memory: mixed prompts at 32 connections until $RUNS runs; RSS every 10 s"
            echo "  start rss_mib=$(rss_mib "$SERVER_PID")"
            done_runs=0
            while [[ $done_runs -lt $RUNS ]]; do
                out="$(CRANE_BENCH_MIX=mixed taskset -c 1 wrk -t1 -c32 -d10s --timeout 10s -s bench/wrk/runs.lua "$URL" | grep '^RESULT')"
                n="$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$out")"
                done_runs=$((done_runs + n))
                echo "  runs=$done_runs rss_mib=$(rss_mib "$SERVER_PID") ${out#RESULT }"
            done
            stop_crane ;;
        *) echo "unknown point $point (see --help)" >&2; exit 2 ;;
    esac
done
