//! `# HELP` text for every Prometheus metric crane exports (`promtool check metrics` requires
//! it). Must run after the recorder is installed, or the descriptions are lost. The metric
//! reference in docs/observability.md lists the same names.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Describes every metric.
pub fn describe() {
    describe_gauge!(
        "crane_active_runs",
        "Runs queued or executing in this process."
    );
    describe_gauge!("crane_queue_depth", "Runs waiting for a worker.");
    describe_gauge!(
        "crane_build_info",
        "Always 1; the version label says which crane is running."
    );
    describe_gauge!(
        "crane_llm_circuit_breaker_state",
        "Circuit breaker per LLM provider: 0 closed, 1 half-open, 2 open."
    );
    describe_gauge!(
        "crane_budget_used_ratio",
        "Spend of each tenant's budget in its current window (day or month, UTC): used over allowed, the largest over its token and USD limits; 1 or more is spent."
    );
    describe_counter!(
        "crane_experiment_runs_total",
        "Finished runs of an A/B experiment by experiment, arm (its planner) and outcome (completed or failed)."
    );
    describe_counter!(
        "crane_budget_alerts_total",
        "Budget threshold alerts for the webhook, by result (sent, failed after retries, dropped when the queue was full)."
    );
    describe_counter!(
        "crane_trace_export_spans_total",
        "Spans handed to the OTLP exporter, by result (exported or failed)."
    );
    describe_counter!(
        "crane_http_requests_total",
        "HTTP requests by method, route template and status."
    );
    describe_histogram!(
        "crane_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by method and route template."
    );
    describe_counter!(
        "crane_runs_total",
        "Finished runs by final status and plan source."
    );
    describe_histogram!(
        "crane_run_duration_seconds",
        Unit::Seconds,
        "Run latency from creation to its final state, by status."
    );
    describe_counter!(
        "crane_tool_executions_total",
        "Step executions by tool and outcome."
    );
    describe_histogram!(
        "crane_step_duration_seconds",
        Unit::Seconds,
        "Step latency (all attempts and backoff) by tool."
    );
    describe_counter!(
        "crane_step_retries_total",
        "Step attempts retried after a retryable failure, by tool."
    );
    describe_counter!(
        "crane_plans_total",
        "Plans made, by the layer that made them."
    );
    describe_histogram!(
        "crane_planning_duration_seconds",
        Unit::Seconds,
        "Planning latency by plan source."
    );
    describe_counter!(
        "crane_plan_fallbacks_total",
        "Plans made by the rule planner after the LLM layers failed."
    );
    describe_counter!(
        "crane_plan_failures_total",
        "Prompts no planner layer could plan."
    );
    describe_counter!(
        "crane_plan_cache_lookups_total",
        "Plan-cache lookups by result (hit or miss)."
    );
    describe_counter!(
        "crane_plan_layer_failures_total",
        "Planner-chain layer failures by reason (error category)."
    );
    describe_counter!(
        "crane_llm_requests_total",
        "LLM requests by provider, model and status."
    );
    describe_histogram!(
        "crane_llm_request_duration_seconds",
        Unit::Seconds,
        "LLM request latency (retries included) by provider and model."
    );
    describe_counter!(
        "crane_llm_tokens_total",
        "LLM tokens by provider, model and direction (input or output)."
    );
    describe_counter!(
        "crane_llm_cost_microdollars_total",
        "LLM spend in millionths of a US dollar, from the configured pricing table."
    );
    describe_counter!(
        "crane_tracking_exported_total",
        "Finished runs exported to the experiment tracker, by exporter."
    );
    describe_counter!(
        "crane_tracking_dropped_total",
        "Finished runs not exported because the export queue was full, by exporter."
    );
    describe_counter!(
        "crane_tracking_failed_total",
        "Finished runs the exporter gave up on (rejected, or still queued at shutdown), by exporter."
    );
    describe_counter!(
        "crane_tracking_retries_total",
        "Export batch attempts that failed transiently and were retried with backoff, by exporter."
    );
    describe_gauge!(
        "crane_tracking_queue_depth",
        "Finished runs waiting in the export queue, by exporter."
    );
}
