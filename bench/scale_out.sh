#!/usr/bin/env bash
# Runs/s and POST→completed latency with 1, 2 and 3 crane replicas on one PostgreSQL database
# (issue 15), behind an nginx load balancer (round robin, keep-alive to the replicas), driven by
# wrk with the mixed calculator/todo prompts (`POST /runs?wait=true`, every answer checked);
# and pgbench's built-in simple-update (`-N`) TPS on the same server as the ceiling.
#
#   bench/scale_out.sh [--crane PATH] [--duration S] [--connections C] [--mix mixed|rule]
#                      [--database-url postgres://user@host:port/db] [--replicas "sqlite 1 2 3"]
#
# Points: N = N replicas on PostgreSQL; `sqlite` = one crane on its embedded SQLite behind the
# same load balancer (the single-process baseline). Each line also gives the CPU time per run
# of the crane processes and of PostgreSQL's processes, which shows what limits the point.
# Each point uses a fresh database. Everything (PostgreSQL, the replicas, nginx, wrk) shares
# this machine's cores: the figures say what N replicas add on one 2-core box, not what N
# machines would. Prints one line per point, plus PostgreSQL's commits/s during the point.
# Needs wrk, nginx, psql and pgbench (Debian: wrk nginx-light postgresql-client); installs wrk
# and nginx with apt-get when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export PGOPTIONS="-c client_min_messages=warning"

CRANE="${CRANE:-${CARGO_TARGET_DIR:-$HOME/.cache/crane/target}/release/crane}"
DURATION=10
WARMUP=2
CONNS=32
MIX=mixed
REPLICAS="sqlite 1 2 3"
ADMIN_URL="${CRANE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --crane) CRANE="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --connections) CONNS="$2"; shift 2 ;;
        --mix) MIX="$2"; shift 2 ;;
        --database-url) ADMIN_URL="$2"; shift 2 ;;
        --replicas) REPLICAS="$2"; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ -x "$CRANE" ]] || { echo "no crane binary at $CRANE (cargo build --release -p crane, or --crane PATH)" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || command -v "/usr/sbin/$1" >/dev/null 2>&1; }
if ! need wrk || ! need nginx; then
    echo "installing wrk and nginx-light (apt-get)" >&2
    apt-get install -y wrk nginx-light >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk nginx-light >/dev/null; }
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
pg_isready -q -d "$ADMIN_URL" || { echo "no PostgreSQL answers at $ADMIN_URL" >&2; exit 1; }

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
db_url() { python3 -c 'import sys, urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/"+sys.argv[2])))' "$ADMIN_URL" "$1"; }
fresh_db() {
    psql -q -d "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null
}
commits() { psql -At -d "$ADMIN_URL" -c "SELECT xact_commit FROM pg_stat_database WHERE datname = '$1'"; }

cpu_ticks() { # pids...: user+system ticks of these processes
    local t=0 p
    for p in "$@"; do
        [[ -r "/proc/$p/stat" ]] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$t"
}
pg_pids() { pgrep -d ' ' -x postgres || pgrep -d ' ' postgres || true; }

point() { # replicas, or "sqlite"
    local n="$1" db="crane_bench_scale_$1" ports=() upstream="" url crane_pids=()
    local store_env=()
    if [[ "$n" == sqlite ]]; then
        n=1
    else
        fresh_db "$db"
        url="$(db_url "$db")"
        store_env=(CRANE_DATABASE_URL="$url")
    fi
    for i in $(seq 1 "$n"); do
        local port
        port="$(free_port)"
        ports+=("$port")
        env CRANE_LOG_FORMAT=json RUST_LOG=warn "${store_env[@]}" \
            "$CRANE" serve --data-dir "$WORK/data-$1-$i" --addr "127.0.0.1:$port" >"$WORK/crane-$1-$i.log" 2>&1 &
        PIDS+=($!)
        crane_pids+=($!)
        for _ in $(seq 1 200); do
            curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
            sleep 0.05
        done
        curl -fsS "http://127.0.0.1:$port/health" >/dev/null || { cat "$WORK/crane-$1-$i.log" >&2; exit 1; }
        upstream+="        server 127.0.0.1:$port;"$'\n'
    done
    local lb_port
    lb_port="$(free_port)"
    mkdir -p "$WORK/nginx-$n"
    cat >"$WORK/nginx-$n/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx-$n/nginx.pid;
error_log $WORK/nginx-$n/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx-$n/body;
    proxy_temp_path $WORK/nginx-$n/proxy;
    fastcgi_temp_path $WORK/nginx-$n/fastcgi;
    uwsgi_temp_path $WORK/nginx-$n/uwsgi;
    scgi_temp_path $WORK/nginx-$n/scgi;
    keepalive_requests 1000000;
    upstream crane {
$upstream        keepalive 64;
    }
    server {
        listen 127.0.0.1:$lb_port;
        location / {
            proxy_pass http://crane;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF
    "$NGINX" -c "$WORK/nginx-$n/nginx.conf" -p "$WORK/nginx-$n" >/dev/null 2>&1 &
    local nginx_pid=$!
    PIDS+=("$nginx_pid")
    sleep 0.2
    CRANE_BENCH_MIX="$MIX" wrk -t2 -c"$CONNS" -d"${WARMUP}s" -s bench/wrk/runs.lua "http://127.0.0.1:$lb_port" >/dev/null
    local c0=0 c1=0 out reqs cr0 cr1 pg0 pg1 pgp
    [[ "$1" != sqlite ]] && c0="$(commits "$db")"
    pgp="$(pg_pids)"
    cr0="$(cpu_ticks "${crane_pids[@]}")"
    # shellcheck disable=SC2086
    pg0="$(cpu_ticks $pgp)"
    out="$(CRANE_BENCH_MIX="$MIX" wrk -t2 -c"$CONNS" -d"${DURATION}s" --timeout 10s -s bench/wrk/runs.lua "http://127.0.0.1:$lb_port" | grep '^RESULT')"
    cr1="$(cpu_ticks "${crane_pids[@]}")"
    # shellcheck disable=SC2086
    pg1="$(cpu_ticks $pgp)"
    [[ "$1" != sqlite ]] && c1="$(commits "$db")"
    reqs="$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$out")"
    local per_run
    per_run="$(awk -v c="$((cr1 - cr0))" -v p="$((pg1 - pg0))" -v r="$reqs" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { if (r > 0) printf "crane_cpu_us_per_run=%.0f pg_cpu_us_per_run=%.0f", c / hz * 1e6 / r, p / hz * 1e6 / r }')"
    printf 'replicas=%-6s c=%s %s pg_commits_per_s=%s %s\n' "$1" "$CONNS" "${out#RESULT }" "$(( (c1 - c0) / DURATION ))" "$per_run"
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    PIDS=()
    [[ "$1" != sqlite ]] && psql -q -d "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    return 0
}

echo "crane: $CRANE ($("$CRANE" --version)); PostgreSQL $(psql -At -d "$ADMIN_URL" -c 'SHOW server_version'), synchronous_commit=$(psql -At -d "$ADMIN_URL" -c 'SHOW synchronous_commit'); mix=$MIX; ${DURATION}s after ${WARMUP}s warm-up; all processes share $(nproc) cores"
for n in $REPLICAS; do point "$n"; done

# The ceiling: pgbench's simple-update transactions on the same server.
fresh_db crane_bench_pgbench
pgbench -q -i -s 10 "$(db_url crane_bench_pgbench)" >/dev/null 2>&1
tps="$(pgbench -N -c "$CONNS" -j 2 -T "$DURATION" "$(db_url crane_bench_pgbench)" 2>/dev/null | awk '/^tps/ {print $3; exit}')"
echo "pgbench simple-update (-N) c=$CONNS: tps=$tps"
psql -q -d "$ADMIN_URL" -c "DROP DATABASE IF EXISTS crane_bench_pgbench WITH (FORCE)" >/dev/null
