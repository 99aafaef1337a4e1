//! One test suite over both store backends: every test here runs once on SQLite and once on
//! PostgreSQL (see [`store_test!`]). PostgreSQL tests use a fresh database per test, created on
//! the server `CRANE_TEST_DATABASE_URL` names (default `postgres://postgres@127.0.0.1:5432/test`).
//! When no server answers, the PostgreSQL half is skipped with a message, unless
//! `CRANE_REQUIRE_POSTGRES=1` (set by `scripts/test.sh`), which makes it fail instead.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

mod experiments;
mod plan_cache;
mod records;
mod runs;
mod todos;
