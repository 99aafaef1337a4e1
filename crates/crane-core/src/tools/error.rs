//! The error a tool returns, with the category that drives the retry policy.

use serde::Serialize;

/// Category of a tool failure. Only `Timeout` and `Transient` are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolErrorKind {
    /// The input is wrong; retrying cannot help.
    InvalidInput,
    /// What the input names does not exist.
    NotFound,
    /// The input matches more than one thing.
    Ambiguous,
    /// The step took longer than its timeout.
    Timeout,
    /// A temporary failure (busy database, flaky dependency): worth retrying.
    Transient,
    /// A bug or a broken dependency: not retried.
    Internal,
}

impl ToolErrorKind {
    /// True when the executor should try again.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Timeout | Self::Transient)
    }

    /// Label for JSON, metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidInput => "invalid_input",
            Self::NotFound => "not_found",
            Self::Ambiguous => "ambiguous",
            Self::Timeout => "timeout",
            Self::Transient => "transient",
            Self::Internal => "internal",
        }
    }
}

/// A tool failure: a category and a message meant for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ToolError {
    pub kind: ToolErrorKind,
    pub message: String,
}

impl ToolError {
    pub fn new(kind: ToolErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ToolErrorKind::InvalidInput, message)
    }
}

impl From<crate::store::StoreError> for ToolError {
    fn from(e: crate::store::StoreError) -> Self {
        let kind = if e.is_transient() {
            ToolErrorKind::Transient
        } else {
            ToolErrorKind::Internal
        };
        Self::new(kind, e.to_string())
    }
}
