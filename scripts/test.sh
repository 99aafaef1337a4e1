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

echo "== cargo test"
cargo test --workspace --locked -- --test-threads 2
