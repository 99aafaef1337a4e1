//! End-to-end tests of the `crane` binary: the HTTP API, the run lifecycle (retries, timeouts,
//! cancellation, restarts, crash recovery, graceful shutdown) and the CLI. Each test starts its
//! own `crane` process on a temporary data directory and a port chosen by the OS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod analyze;
mod api;
mod auth;
mod budgets;
mod cli;
mod eval;
mod experiments;
mod hardening;
mod lifecycle;
mod llm_faults;
mod llm_real;
mod llm_stream;
mod llm_stream_real;
mod logs;
mod mlflow;
mod observability;
mod otel;
mod pg;
mod registry;
mod scale_out;
mod schemathesis;
mod semantic_cache;
mod support;
mod todos;
