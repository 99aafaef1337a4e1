//! Errors of the runtime layer (what the server maps to HTTP statuses).

use crate::store::StoreError;

/// Why a runtime operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("the prompt is empty; send a task in plain language, e.g. \"add a todo to buy milk\"")]
    EmptyPrompt,
    #[error("the prompt is {len} characters long; the limit is {limit}")]
    PromptTooLong { len: usize, limit: usize },
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidPlan(crate::planning::PlanError),
    #[error("run {0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("crane is overloaded ({queued} runs queued); retry later")]
    Overloaded { queued: usize },
    #[error("crane is shutting down; retry against another instance or after restart")]
    ShuttingDown,
    /// A spend budget of the tenant with `on_exhausted = "reject"` is spent.
    #[error(transparent)]
    BudgetExhausted(Box<crate::budgets::BudgetRefusal>),
    #[error(transparent)]
    Store(#[from] StoreError),
}
