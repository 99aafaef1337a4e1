#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, then every test (unit, property,
# golden set, end-to-end against the real binary). Installs what the tests need by itself.
# Reuses a build cache outside the clone (~/.cache/crane/target) when one exists.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crane/target}"
mkdir -p "$CARGO_TARGET_DIR"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

./scripts/install-test-deps.sh
echo "== cargo test"
cargo test --workspace --locked -- --test-threads 2

# The eval gates: the rule planner must pass every golden and adversarial case (exit 1 names
# the failing cases). Results are stored in ./.crane (git-ignored).
echo "== crane eval (golden, adversarial)"
cargo run --release --locked -p crane -- eval --dataset data/golden.jsonl --planner rule --min-success-rate 1.0
cargo run --release --locked -p crane -- eval --dataset data/adversarial.jsonl --planner rule --min-success-rate 1.0
