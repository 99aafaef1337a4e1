//! Fault-injection tools, registered only when debug tools are enabled (`--debug-tools` /
//! `CRANE_DEBUG_TOOLS=1`): `debug_sleep` (a slow step), `debug_flaky` (fails transiently a
//! given number of times, then succeeds) and `debug_fail` (fails with a chosen category).
//! They let tests and operators exercise timeouts, retries, cancellation and crash recovery
//! without a network. No planner produces them; a caller supplies them in a plan.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ToolContext, ToolError, ToolErrorKind, TypedTool};

/// Input of `debug_sleep`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SleepInput {
    /// Milliseconds to sleep (at most 600000).
    #[schemars(range(max = 600000))]
    pub ms: u64,
}

/// Output of the debug tools.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DebugOutput {
    pub ok: bool,
    /// Attempts seen for this key (debug_flaky).
    pub attempts: u32,
}

/// `debug_sleep`: sleeps, then succeeds.
pub struct DebugSleep;

impl TypedTool for DebugSleep {
    const NAME: &'static str = "debug_sleep";
    /// It only waits.
    const READ_ONLY: bool = true;
    const DESCRIPTION: &'static str = "Debug: sleep for `ms` milliseconds, then succeed.";
    type Input = SleepInput;
    type Output = DebugOutput;

    async fn run(&self, _ctx: &ToolContext, input: SleepInput) -> Result<DebugOutput, ToolError> {
        tokio::time::sleep(Duration::from_millis(input.ms.min(600_000))).await;
        Ok(DebugOutput {
            ok: true,
            attempts: 1,
        })
    }
}

/// Input of `debug_flaky`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlakyInput {
    /// Attempts that fail (transiently) before one succeeds, counted per key in this process.
    pub fail_times: u32,
    /// Counter key; defaults to the run and step.
    #[serde(default)]
    pub key: Option<String>,
}

/// `debug_flaky`: fails with a transient error `fail_times` times, then succeeds.
#[derive(Default)]
pub struct DebugFlaky {
    seen: Mutex<HashMap<String, u32>>,
}

impl TypedTool for DebugFlaky {
    const NAME: &'static str = "debug_flaky";
    const DESCRIPTION: &'static str =
        "Debug: fail transiently `fail_times` times (per key), then succeed.";
    type Input = FlakyInput;
    type Output = DebugOutput;

    async fn run(&self, ctx: &ToolContext, input: FlakyInput) -> Result<DebugOutput, ToolError> {
        let key = input.key.unwrap_or_else(|| ctx.effect_key());
        let attempts = {
            let mut seen = self.seen.lock().map_err(|_| {
                ToolError::new(ToolErrorKind::Internal, "debug_flaky state poisoned")
            })?;
            let n = seen.entry(key).or_insert(0);
            *n += 1;
            *n
        };
        if attempts <= input.fail_times {
            return Err(ToolError::new(
                ToolErrorKind::Transient,
                format!(
                    "injected transient failure {attempts} of {}",
                    input.fail_times
                ),
            ));
        }
        Ok(DebugOutput { ok: true, attempts })
    }
}

/// Input of `debug_fail`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailInput {
    /// Category: invalid_input, not_found, transient, timeout or internal.
    pub kind: String,
    #[serde(default)]
    pub message: Option<String>,
}

/// `debug_fail`: always fails with the given category.
pub struct DebugFail;

impl TypedTool for DebugFail {
    const NAME: &'static str = "debug_fail";
    const DESCRIPTION: &'static str = "Debug: always fail with the given error category.";
    type Input = FailInput;
    type Output = DebugOutput;

    fn check(&self, input: &FailInput) -> Result<(), String> {
        parse_kind(&input.kind).map(|_| ())
    }

    async fn run(&self, _ctx: &ToolContext, input: FailInput) -> Result<DebugOutput, ToolError> {
        let kind = parse_kind(&input.kind).map_err(ToolError::invalid)?;
        Err(ToolError::new(
            kind,
            input
                .message
                .unwrap_or_else(|| format!("injected {} failure", input.kind)),
        ))
    }
}

fn parse_kind(kind: &str) -> Result<ToolErrorKind, String> {
    Ok(match kind {
        "invalid_input" => ToolErrorKind::InvalidInput,
        "not_found" => ToolErrorKind::NotFound,
        "transient" => ToolErrorKind::Transient,
        "timeout" => ToolErrorKind::Timeout,
        "internal" => ToolErrorKind::Internal,
        other => {
            return Err(format!(
                "unknown kind '{other}' (use invalid_input, not_found, transient, timeout or internal)"
            ));
        }
    })
}
