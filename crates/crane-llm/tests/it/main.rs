//! Integration tests for crane-llm against wiremock upstreams: one test binary (faster to link
//! on 2 cores) with one module per concern.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod anthropic;
mod breaker;
mod common;
mod openai;
mod stream;
