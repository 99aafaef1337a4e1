//! crane's LLM provider clients: one [`Provider`] per configured model server, speaking either
//! the OpenAI-compatible Chat Completions API (OpenAI, vLLM, Ollama, llama.cpp, LiteLLM, ...) or
//! the Anthropic Messages API, and always returning one structured JSON object.
//!
//! A provider ties together structured-output modes with automatic fallback ([`StructuredMode`]),
//! retries with full-jitter backoff bounded by the caller's deadline ([`RetryConfig`]), a circuit
//! breaker ([`BreakerConfig`]), token usage and cost ([`Pricing`]). Errors are one
//! [`LlmError`] with a coarse [`ErrorKind`] the planner can branch on (fail over, repair, give up).
//!
//! Invariants: an API key never appears in an error message, a log line or `Debug` output;
//! nothing here panics on bad server output (it becomes [`ErrorKind::InvalidOutput`]).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod anthropic;
mod breaker;
mod config;
mod error;
mod extract;
mod openai;
mod pricing;
mod provider;
mod retry;
mod stream;
mod types;
mod wire;

pub use breaker::{BreakerConfig, BreakerState};
pub use config::{ApiKey, ProviderConfig, ProviderKind, StructuredMode};
pub use error::{ErrorKind, LlmError};
pub use extract::extract_json;
pub use pricing::{Pricing, add_usd, cost_usd, round_usd};
pub use provider::{OnText, Provider};
pub use retry::RetryConfig;
pub use types::{ChatPrompt, ChatRequest, ChatResponse, Message, Role, Usage, temperature_f64};
