#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, then every test (unit, property,
# golden set, end-to-end against the real binary), then the eval gates. Installs what the tests
# need by itself. Reuses caches outside the clone when they exist: the cargo build cache
# (~/.cache/crane/target, or CARGO_TARGET_DIR) and the Python venvs and llama.cpp wheel
# (~/.cache/crane, or CRANE_CACHE_DIR).
#
# The workspace is compiled once (debug, for the tests); the eval gates run that same binary.
# The outside programs install in the background while cargo compiles. The time of each stage
# is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crane/target}"
mkdir -p "$CARGO_TARGET_DIR"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# The PostgreSQL store tests must run (install-test-deps starts a server when none answers).
export CRANE_REQUIRE_POSTGRES=1
export CRANE_TEST_DATABASE_URL="${CRANE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"

STAGES=()
START=$SECONDS
# Runs one stage (a name, then the command) and records how long it took.
stage() {
    local name="$1" t0=$SECONDS
    shift
    echo "== $name"
    "$@"
    STAGES+=("$(printf '%-46s %5ss' "$name" $((SECONDS - t0)))")
}
report() {
    local rc=$?
    echo
    echo "== stage times"
    for s in "${STAGES[@]}"; do echo "  $s"; done
    printf '  %-46s %5ss (exit %s)\n' "total" $((SECONDS - START)) "$rc"
}
trap report EXIT

stage "cargo fmt --check" cargo fmt --all -- --check

# Outside programs (Prometheus, llama.cpp + model, Phoenix, MLflow) install while cargo works:
# their downloads overlap the compile. Their log goes to a file, printed when they are awaited.
DEPS_LOG="$(mktemp)"
./scripts/install-test-deps.sh >"$DEPS_LOG" 2>&1 &
DEPS_PID=$!
DEPS_T0=$SECONDS

stage "cargo clippy --all-targets -- -D warnings" \
    cargo clippy --workspace --all-targets --locked -- -D warnings
stage "cargo test --no-run (build)" cargo test --workspace --locked --no-run

wait_deps() {
    local rc=0
    wait "$DEPS_PID" || rc=$?
    cat "$DEPS_LOG"
    rm -f "$DEPS_LOG"
    STAGES+=("$(printf '%-46s %5ss' "install-test-deps (in the background)" $((SECONDS - DEPS_T0)))")
    return "$rc"
}
stage "wait for install-test-deps" wait_deps

stage "cargo test" cargo test --workspace --locked -- --test-threads 2

# The end-to-end suite again with every server on PostgreSQL (a fresh database per server):
# every capability works on both stores. The real-component tests (model server, OTLP,
# MLflow, Prometheus, schemathesis) do not depend on the store and ran above.
stage "end-to-end tests on PostgreSQL" env CRANE_TEST_STORE=postgres \
    cargo test -p crane --test it --locked -- --test-threads 2 \
    --skip llm_real --skip llm_stream_real --skip mlflow --skip otel --skip schemathesis \
    --skip observability

# The eval gates: the rule planner must pass every golden and adversarial case (exit 1 names
# the failing cases), run by the binary the tests just built. Results are stored in ./.crane
# (git-ignored).
CRANE="$CARGO_TARGET_DIR/debug/crane"
stage "crane eval (golden)" \
    "$CRANE" eval --dataset data/golden.jsonl --planner rule --min-success-rate 1.0
stage "crane eval (adversarial)" \
    "$CRANE" eval --dataset data/adversarial.jsonl --planner rule --min-success-rate 1.0
# The semantic plan cache's gate with the real embedding model: on data/paraphrases.jsonl no
# wrong plan at the default threshold, and at least 60% of true paraphrases served.
stage "crane bench-cache (paraphrase gate)" \
    "$CRANE" bench-cache --model-dir "${CRANE_CACHE_DIR:-$HOME/.cache/crane}/models/all-MiniLM-L6-v2" \
    --dataset data/paraphrases.jsonl --entries 0 --min-paraphrase-hit-rate 0.6
