//! A run: one prompt's journey from `pending` to `completed`, `failed` or `cancelled`,
//! with the plan and a record of every step attempt.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Plan, Timestamp};

/// The run status machine: pending → running → completed | failed | cancelled
/// (pending may also go straight to failed or cancelled; a failed run may be retried,
/// which puts it back to pending).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl RunStatus {
    /// The lower-case label used in JSON, SQL and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses the label produced by [`RunStatus::as_str`].
    pub fn parse(label: &str) -> Option<Self> {
        Some(match label {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }

    /// True once the run can no longer change by itself.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

/// Status of one step in the execution log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Running,
    Completed,
    Failed,
    Cancelled,
}

/// One attempt at executing a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// 1-based attempt number.
    pub attempt: u32,
    /// `completed` or `failed`.
    pub status: StepStatus,
    /// Error message of a failed attempt.
    pub error: Option<String>,
    /// Error category of a failed attempt (`timeout`, `transient`, `invalid_input`, ...).
    pub error_kind: Option<String>,
    pub started_at: Timestamp,
    pub duration_ms: f64,
    /// Backoff slept after this attempt before the next one.
    pub backoff_ms: Option<u64>,
}

/// The execution record of one step (field names fixed by DESIGN.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step_number: u32,
    pub tool: String,
    /// The input after references were resolved.
    pub input: Value,
    pub status: StepStatus,
    pub output: Option<Value>,
    pub error: Option<String>,
    /// How many attempts were made.
    pub attempts: u32,
    /// Every attempt, in order.
    #[serde(default)]
    pub attempt_log: Vec<AttemptRecord>,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub duration_ms: Option<f64>,
}

/// Full run state (field names fixed by DESIGN.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub run_id: String,
    pub prompt: String,
    pub status: RunStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// W3C trace id of the request that created the run.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// The planner variant or alias the run asked for (none: the `production` alias, else
    /// the default variant). What actually planned is in `plan.planner.variant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planner: Option<String>,
    pub plan: Option<Plan>,
    pub execution_log: Vec<StepRecord>,
    pub result: Option<Value>,
    pub error: Option<String>,
    /// How many times the run was retried after failing.
    #[serde(default)]
    pub retries: u32,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
}

impl Run {
    /// A new pending run.
    pub fn new(prompt: String, user_id: Option<String>, metadata: Option<Value>) -> Self {
        Self {
            run_id: uuid::Uuid::now_v7().to_string(),
            prompt,
            status: RunStatus::Pending,
            user_id,
            metadata,
            idempotency_key: None,
            trace_id: None,
            planner: None,
            plan: None,
            execution_log: Vec::new(),
            result: None,
            error: None,
            retries: 0,
            created_at: super::now(),
            started_at: None,
            completed_at: None,
        }
    }

    /// The number of leading steps that completed; execution resumes after them.
    pub fn completed_steps(&self) -> usize {
        self.execution_log
            .iter()
            .take_while(|s| s.status == StepStatus::Completed)
            .count()
    }
}
