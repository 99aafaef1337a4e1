//! The one error type of the LLM layer: [`LlmError`] with a coarse [`ErrorKind`] the planner
//! branches on, plus the helpers that turn server bodies into short, key-free message snippets.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::ApiKey;

/// Longest server-body excerpt kept in an error message, in characters.
pub(crate) const SNIPPET_CHARS: usize = 300;

/// What went wrong, coarsely: enough to decide between retrying, failing over, repairing or
/// giving up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// 401/403: the key is missing, wrong or lacks permission. Never retried.
    Auth,
    /// Bad configuration or a request the server rejects (400/404/422 after every mode).
    Config,
    /// 429 from the server.
    RateLimit,
    /// The request (or the caller's deadline) timed out.
    Timeout,
    /// 5xx from the server (including Anthropic's 529 "overloaded").
    Server,
    /// Connection refused, DNS failure, reset...
    Network,
    /// The server answered but the answer is not a usable JSON object.
    InvalidOutput,
    /// A cost or token budget was exhausted (raised by callers such as the planner).
    Budget,
    /// The provider's circuit breaker is open; no request was sent.
    CircuitOpen,
}

impl ErrorKind {
    /// The stable label used in metrics and JSON: `"auth"`, `"rate_limit"`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Config => "config",
            Self::RateLimit => "rate_limit",
            Self::Timeout => "timeout",
            Self::Server => "server",
            Self::Network => "network",
            Self::InvalidOutput => "invalid_output",
            Self::Budget => "budget",
            Self::CircuitOpen => "circuit_open",
        }
    }

    /// Whether the provider retries this kind of failure itself (rate limit, timeout, server,
    /// network).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::RateLimit | Self::Timeout | Self::Server | Self::Network
        )
    }

    /// Whether this is an availability failure: the retryable kinds plus [`ErrorKind::CircuitOpen`].
    /// These count toward the circuit breaker and are the ones worth failing over to another
    /// provider for; auth, config and invalid-output failures are not.
    pub fn is_availability(self) -> bool {
        self.is_retryable() || self == Self::CircuitOpen
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An LLM call failure. Displays as `"{provider}: {kind}: {message}"`; the message never
/// contains the API key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{provider}: {kind}: {message}")]
pub struct LlmError {
    /// Category.
    pub kind: ErrorKind,
    /// Human-readable detail, with at most a short, redacted excerpt of the server's body.
    pub message: String,
    /// HTTP status of the last response, when there was one.
    pub status: Option<u16>,
    /// Name of the provider that failed.
    pub provider: String,
}

impl LlmError {
    /// A new error without an HTTP status.
    pub fn new(kind: ErrorKind, provider: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            status: None,
            provider: provider.into(),
        }
    }

    /// Sets the HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }
}

/// Replaces every occurrence of the key in `text` with `***`.
pub(crate) fn redact(text: &str, key: Option<&ApiKey>) -> String {
    match key {
        Some(key) if !key.expose().is_empty() => text.replace(key.expose(), "***"),
        _ => text.to_owned(),
    }
}

/// A one-line, redacted excerpt of a server body: whitespace collapsed, at most
/// [`SNIPPET_CHARS`] characters (redaction happens before truncation so no key prefix survives).
pub(crate) fn snippet(body: &str, key: Option<&ApiKey>) -> String {
    let redacted = redact(body, key);
    let collapsed = redacted.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() {
        return "(empty body)".to_owned();
    }
    match collapsed.char_indices().nth(SNIPPET_CHARS) {
        Some((cut, _)) => format!("{}…", &collapsed[..cut]),
        None => collapsed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_provider_kind_message() {
        let err = LlmError::new(ErrorKind::RateLimit, "openai", "slow down").with_status(429);
        assert_eq!(err.to_string(), "openai: rate_limit: slow down");
        assert_eq!(err.status, Some(429));
    }

    #[test]
    fn kinds_have_stable_labels() {
        let all = [
            (ErrorKind::Auth, "auth"),
            (ErrorKind::Config, "config"),
            (ErrorKind::RateLimit, "rate_limit"),
            (ErrorKind::Timeout, "timeout"),
            (ErrorKind::Server, "server"),
            (ErrorKind::Network, "network"),
            (ErrorKind::InvalidOutput, "invalid_output"),
            (ErrorKind::Budget, "budget"),
            (ErrorKind::CircuitOpen, "circuit_open"),
        ];
        for (kind, label) in all {
            assert_eq!(kind.as_str(), label);
            assert_eq!(
                serde_json::to_string(&kind).unwrap(),
                format!("\"{label}\"")
            );
        }
        assert!(ErrorKind::Server.is_retryable());
        assert!(!ErrorKind::Auth.is_retryable());
        assert!(ErrorKind::CircuitOpen.is_availability());
        assert!(!ErrorKind::InvalidOutput.is_availability());
    }

    #[test]
    fn snippet_redacts_then_truncates() {
        let key = ApiKey::new("sk-secret");
        let body = format!("{}sk-secret tail", "x".repeat(295));
        let s = snippet(&body, Some(&key));
        assert!(!s.contains("sk-"), "{s}");
        assert!(s.chars().count() <= SNIPPET_CHARS + 1);
        assert!(s.ends_with('…'));
        assert_eq!(snippet("  a \n b ", None), "a b");
        assert_eq!(snippet("", None), "(empty body)");
        // Multi-byte characters are cut on a character boundary.
        let s = snippet(&"é".repeat(400), None);
        assert_eq!(s.chars().count(), SNIPPET_CHARS + 1);
    }

    #[test]
    fn error_debug_never_contains_the_key() {
        let key = ApiKey::new("sk-secret");
        let err = LlmError::new(
            ErrorKind::Auth,
            "p",
            snippet("{\"error\":\"bad key sk-secret\"}", Some(&key)),
        );
        assert!(!format!("{err:?}").contains("sk-secret"));
        assert!(!err.to_string().contains("sk-secret"));
    }
}
