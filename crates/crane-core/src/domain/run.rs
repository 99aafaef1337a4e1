//! A run: one prompt's journey from `pending` to `completed`, `failed` or `cancelled`,
//! with the plan and a record of every step attempt.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{LayerFailure, Plan, Timestamp, TokenUsage};

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
    /// The input after references were resolved (bounded like `output`).
    pub input: Value,
    pub status: StepStatus,
    /// The tool's output; one over [`super::output::MAX_STORED_BYTES`] of JSON is stored as a
    /// truncated copy `{"truncated": true, "size_bytes", "limit_bytes", "preview"}` (see
    /// [`super::output`]).
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

/// Why planning failed and what the failed attempts cost: set on a run that failed because
/// every layer of the planner chain failed (no plan). The same shapes as `plan.planner`'s
/// `attempts`, `usage` and `cost_usd`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PlanFailure {
    /// Every layer (or variant) that did not produce a plan, in order.
    #[serde(default)]
    pub attempts: Vec<LayerFailure>,
    /// Tokens billed by the LLM calls of the failed attempts (repair rounds included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<TokenUsage>,
    /// Their cost in USD, from the configured pricing table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

impl PlanFailure {
    /// Adds the tokens and cost of an earlier failed planning of the same run.
    pub fn add_spend(&mut self, earlier: &PlanFailure) {
        self.usage = sum_usage(self.usage, earlier.usage);
        self.cost_usd = crane_llm::add_usd(self.cost_usd, earlier.cost_usd);
    }
}

/// Two optional token counts added; `None` only when both are.
fn sum_usage(a: Option<TokenUsage>, b: Option<TokenUsage>) -> Option<TokenUsage> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or_default() + b.unwrap_or_default()),
    }
}

/// Full run state (field names fixed by DESIGN.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub run_id: String,
    /// The tenant the run belongs to (`default` with auth off, and for runs stored before
    /// tenancy). Another tenant never sees it.
    #[serde(default = "default_tenant")]
    pub tenant: String,
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
    /// Set when no plan could be made: the failed attempts and what they cost. It stays after
    /// a retry (which plans again), so the run's planning spend keeps the failed attempts;
    /// the spend of every failed planning of the run adds up here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_failure: Option<PlanFailure>,
    pub execution_log: Vec<StepRecord>,
    /// The last step's output as stored in `execution_log` (truncated copy included).
    pub result: Option<Value>,
    pub error: Option<String>,
    /// How many times the run was retried after failing.
    #[serde(default)]
    pub retries: u32,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
    /// The experiment arm the run was assigned to (a run that named its planner is not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<ExperimentArm>,
    /// The user's feedback on the run (`POST /runs/{run_id}/feedback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<Feedback>,
}

/// The experiment and arm a run was assigned to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExperimentArm {
    /// The experiment's name.
    pub name: String,
    /// The arm's planner (variant or alias), as the experiment names it.
    pub arm: String,
}

/// A user's feedback on a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// 0 (bad) ..= 1 (good).
    pub score: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub at: Timestamp,
}

fn default_tenant() -> String {
    crate::access::DEFAULT_TENANT.to_owned()
}

impl Run {
    /// A new pending run.
    pub fn new(prompt: String, user_id: Option<String>, metadata: Option<Value>) -> Self {
        Self {
            run_id: uuid::Uuid::now_v7().to_string(),
            tenant: default_tenant(),
            prompt,
            status: RunStatus::Pending,
            user_id,
            metadata,
            idempotency_key: None,
            trace_id: None,
            planner: None,
            plan: None,
            plan_failure: None,
            execution_log: Vec::new(),
            result: None,
            error: None,
            retries: 0,
            created_at: super::now(),
            started_at: None,
            completed_at: None,
            experiment: None,
            feedback: None,
        }
    }

    /// Tokens planning was billed for: the plan's `usage` plus that of failed planning
    /// (`plan_failure`); `None` when neither reports any.
    pub fn planning_usage(&self) -> Option<TokenUsage> {
        sum_usage(
            self.plan.as_ref().and_then(|p| p.planner.usage),
            self.plan_failure.as_ref().and_then(|f| f.usage),
        )
    }

    /// What planning cost in USD: the plan's `cost_usd` plus that of failed planning
    /// (`plan_failure`); `None` when neither is priced.
    pub fn planning_cost_usd(&self) -> Option<f64> {
        crane_llm::add_usd(
            self.plan.as_ref().and_then(|p| p.planner.cost_usd),
            self.plan_failure.as_ref().and_then(|f| f.cost_usd),
        )
    }

    /// The number of leading steps that completed; execution resumes after them.
    pub fn completed_steps(&self) -> usize {
        self.execution_log
            .iter()
            .take_while(|s| s.status == StepStatus::Completed)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_failure_is_serialised_only_when_present_and_old_runs_load() {
        let mut run = Run::new("paint the fence".into(), None, None);
        let json = serde_json::to_value(&run).unwrap();
        assert!(json.get("plan_failure").is_none(), "{json}");
        // A run stored before the field existed.
        let old: Run = serde_json::from_value(json).unwrap();
        assert_eq!(old.plan_failure, None);

        run.plan_failure = Some(PlanFailure {
            attempts: vec![LayerFailure {
                layer: "llm:primary".into(),
                category: "invalid_plan".into(),
                message: "invalid plan after one repair round".into(),
            }],
            usage: Some(TokenUsage {
                input_tokens: 200,
                output_tokens: 40,
            }),
            cost_usd: Some(0.00028),
        });
        let json = serde_json::to_value(&run).unwrap();
        assert_eq!(
            json["plan_failure"],
            serde_json::json!({
                "attempts": [{"layer": "llm:primary", "category": "invalid_plan",
                              "message": "invalid plan after one repair round"}],
                "usage": {"input_tokens": 200, "output_tokens": 40},
                "cost_usd": 0.00028
            })
        );
        let back: Run = serde_json::from_value(json).unwrap();
        assert_eq!(back, run);
        assert_eq!(
            back.planning_usage(),
            Some(TokenUsage {
                input_tokens: 200,
                output_tokens: 40
            })
        );
        assert_eq!(back.planning_cost_usd(), Some(0.00028));

        // Without a spend, only the attempts are written.
        run.plan_failure = Some(PlanFailure {
            usage: None,
            cost_usd: None,
            ..run.plan_failure.unwrap_or_default()
        });
        let json = serde_json::to_value(&run).unwrap();
        assert!(json["plan_failure"].get("usage").is_none(), "{json}");
        assert!(json["plan_failure"].get("cost_usd").is_none(), "{json}");
        assert_eq!(run.planning_usage(), None);
        assert_eq!(run.planning_cost_usd(), None);
    }

    #[test]
    fn failed_plannings_of_a_retried_run_add_up() {
        let spend = |usage: Option<(u64, u64)>, cost: Option<f64>| PlanFailure {
            attempts: Vec::new(),
            usage: usage.map(|(input_tokens, output_tokens)| TokenUsage {
                input_tokens,
                output_tokens,
            }),
            cost_usd: cost,
        };
        let mut now = spend(Some((100, 20)), Some(0.5));
        now.add_spend(&spend(Some((30, 4)), Some(0.25)));
        assert_eq!(now, spend(Some((130, 24)), Some(0.75)));
        // Unpriced or unbilled sides count as zero; two empty sides stay empty.
        let mut now = spend(None, None);
        now.add_spend(&spend(Some((30, 4)), None));
        assert_eq!(now, spend(Some((30, 4)), None));
        let mut now = spend(None, None);
        now.add_spend(&spend(None, None));
        assert_eq!(now, spend(None, None));
    }
}
