//! Observability as code, checked with the real Prometheus tools (Debian `prometheus`:
//! `promtool` and the `prometheus` server; `scripts/install-test-deps.sh` installs them):
//! - the rule file passes `promtool check rules`, and its unit tests (`promtool test rules`)
//!   pass and cover every alert (firing and silent) and every recording rule;
//! - the Grafana dashboard's queries use only metrics crane exports or the recording rules;
//! - docs/observability.md documents every metric, recording rule and alert;
//! - crane's live `/metrics` (every metric family exercised, LLM ones through a wiremock
//!   OpenAI-compatible upstream) passes `promtool check metrics` and matches the metric list;
//! - a real Prometheus scrapes a real crane, sees its runs, evaluates the recording rules and
//!   alerts without errors, and answers every dashboard query.
//!
//! A missing `promtool`/`prometheus` fails the tests (never skips them).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{Server, assert_terminal};

/// What to do when a Prometheus tool is missing.
const INSTALL_HINT: &str =
    "run scripts/install-test-deps.sh (it installs the Debian package `prometheus`)";

/// How long Prometheus may take to show what a test waits for.
const PROM_DEADLINE: Duration = Duration::from_secs(60);

/// Every metric family crane exports, with its Prometheus type: the contract that
/// deploy/prometheus/crane-rules.yml, deploy/grafana/crane-dashboard.json and
/// docs/observability.md are written against.
const METRICS: &[(&str, &str)] = &[
    ("crane_http_requests_total", "counter"),
    ("crane_runs_total", "counter"),
    ("crane_tool_executions_total", "counter"),
    ("crane_step_retries_total", "counter"),
    ("crane_plans_total", "counter"),
    ("crane_plan_fallbacks_total", "counter"),
    ("crane_plan_failures_total", "counter"),
    ("crane_plan_cache_lookups_total", "counter"),
    ("crane_plan_layer_failures_total", "counter"),
    ("crane_llm_requests_total", "counter"),
    ("crane_llm_tokens_total", "counter"),
    ("crane_llm_cost_microdollars_total", "counter"),
    ("crane_http_request_duration_seconds", "histogram"),
    ("crane_run_duration_seconds", "histogram"),
    ("crane_step_duration_seconds", "histogram"),
    ("crane_planning_duration_seconds", "histogram"),
    ("crane_llm_request_duration_seconds", "histogram"),
    ("crane_active_runs", "gauge"),
    ("crane_queue_depth", "gauge"),
    ("crane_build_info", "gauge"),
    ("crane_llm_circuit_breaker_state", "gauge"),
];

/// Families that exist only while a feature is on (trace export): the rules, dashboard and docs
/// may use them like [`METRICS`], and a scrape that has them must give them this type, but the
/// plain scrape scenario does not produce them.
const OPTIONAL_METRICS: &[(&str, &str)] = &[
    ("crane_trace_export_spans_total", "counter"),
    ("crane_budget_used_ratio", "gauge"),
    ("crane_budget_alerts_total", "counter"),
    ("crane_experiment_runs_total", "counter"),
];

/// Alerts the rule file must define.
const ALERTS: &[&str] = &[
    "CraneRunSuccessRateLow",
    "CraneRunLatencyP95High",
    "CranePlanFallbackRateHigh",
    "CraneLLMErrorRateHigh",
    "CraneLLMSpendOverBudget",
    "CraneCircuitBreakerOpen",
    "CraneNoRunsCompleting",
    "CraneTraceExportFailing",
    "CraneBudgetUsed80",
    "CraneBudgetUsed90",
    "CraneBudgetUsed95",
    "CraneBudgetExhausted",
];

/// Recording rules the rule file must define.
const RECORDING_RULES: &[&str] = &[
    "crane:run_success_ratio:rate5m",
    "crane:run_latency_seconds:p50_5m",
    "crane:run_latency_seconds:p95_5m",
    "crane:run_latency_seconds:p99_5m",
    "crane:plan_fallback_ratio:rate5m",
    "crane:llm_error_ratio:rate5m",
    "crane:llm_cost_usd:rate1h",
    "crane:plan_cache_hit_ratio:rate5m",
    "crane:http_error_ratio:rate5m",
];

// ---------------------------------------------------------------------------------------------
// Files and tools

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

fn repo_file(rel: &str) -> PathBuf {
    repo_root().join(rel)
}

fn read_repo_file(rel: &str) -> String {
    std::fs::read_to_string(repo_file(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// The path of `name` on PATH; fails the test with the install hint when it is missing.
fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("`{name}` is not installed (not found on PATH): {INSTALL_HINT}"))
}

/// Runs `promtool ARGS` from the repository root, feeding `stdin` when given.
fn promtool(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(tool("promtool"));
    cmd.args(args)
        .current_dir(repo_root())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn promtool");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("promtool stdin");
        pipe.write_all(input).expect("write to promtool");
    }
    child.wait_with_output().expect("wait for promtool")
}

fn describe(output: &Output) -> String {
    format!(
        "exit status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

// ---------------------------------------------------------------------------------------------
// The rule file, read line by line (the repository has no YAML parser; the file's layout is
// regular: `- record:`/`- alert:` items with an `expr:` that is inline or a `|` block).

struct Rule {
    kind: &'static str,
    name: String,
    /// The item's lines, as written.
    text: String,
    expr: String,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn parse_rules(text: &str) -> Vec<Rule> {
    let lines: Vec<&str> = text.lines().collect();
    let starts: Vec<(usize, &'static str, String)> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| {
            let t = line.trim_start();
            if let Some(name) = t.strip_prefix("- record:") {
                Some((i, "record", name.trim().to_owned()))
            } else {
                t.strip_prefix("- alert:")
                    .map(|name| (i, "alert", name.trim().to_owned()))
            }
        })
        .collect();
    let mut rules = Vec::new();
    for (n, (start, kind, name)) in starts.iter().enumerate() {
        let item_indent = indent(lines[*start]);
        let mut end = starts.get(n + 1).map_or(lines.len(), |s| s.0);
        // A new group (`- name:` at a smaller indentation) also ends the item.
        if let Some(k) = (start + 1..end).find(|&k| {
            !lines[k].trim().is_empty()
                && !lines[k].trim_start().starts_with('#')
                && indent(lines[k]) < item_indent
        }) {
            end = k;
        }
        let item = &lines[*start..end];
        let expr_at = item
            .iter()
            .position(|l| l.trim_start().starts_with("expr:"))
            .unwrap_or_else(|| panic!("rule {name} has no expr"));
        let expr_line = item[expr_at];
        let inline = expr_line.trim_start()["expr:".len()..].trim();
        let expr = if inline.starts_with('|') || inline.starts_with('>') {
            item[expr_at + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || indent(l) > indent(expr_line))
                .map(|l| l.trim())
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            inline.trim_matches(|c| c == '\'' || c == '"').to_owned()
        };
        rules.push(Rule {
            kind,
            name: name.clone(),
            text: item.join("\n"),
            expr,
        });
    }
    rules
}

fn rules() -> Vec<Rule> {
    parse_rules(&read_repo_file("deploy/prometheus/crane-rules.yml"))
}

// ---------------------------------------------------------------------------------------------
// PromQL: which metric names does an expression select?

/// Index just past the string literal that starts at `i`.
fn skip_string(b: &[u8], i: usize) -> usize {
    let quote = b[i];
    let mut j = i + 1;
    while j < b.len() {
        if b[j] == b'\\' && quote != b'`' {
            j += 2;
            continue;
        }
        if b[j] == quote {
            return j + 1;
        }
        j += 1;
    }
    b.len()
}

/// Index just past the bracket that closes the one at `i` (string literals skipped).
fn skip_group(b: &[u8], i: usize) -> usize {
    let (open, close) = (
        b[i],
        match b[i] {
            b'{' => b'}',
            b'[' => b']',
            _ => b')',
        },
    );
    let mut depth = 0;
    let mut j = i;
    while j < b.len() {
        match b[j] {
            b'"' | b'\'' | b'`' => {
                j = skip_string(b, j);
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
        j += 1;
    }
    b.len()
}

/// The metric names `expr` selects: identifiers that are not functions, aggregation operators,
/// keywords, label names (matchers, `by (...)`, `on (...)`) or Grafana variables.
fn promql_metric_names(expr: &str) -> BTreeSet<String> {
    const LABEL_LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const NOT_METRICS: &[&str] = &[
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "atan2",
        "inf",
        "nan",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ];
    let b = expr.as_bytes();
    let word_byte = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => i = skip_string(b, i),
            b'{' | b'[' => i = skip_group(b, i),
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'$' => {
                i += 1;
                if i < b.len() && b[i] == b'{' {
                    i = skip_group(b, i);
                } else {
                    while i < b.len() && word_byte(b[i]) {
                        i += 1;
                    }
                }
            }
            c if c.is_ascii_digit() || c == b'.' => {
                // Numbers and durations: 0.95, 1e6, 5m, 0x1f.
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let start = i;
                while i < b.len() && word_byte(b[i]) {
                    i += 1;
                }
                let word = &expr[start..i];
                let lower = word.to_ascii_lowercase();
                let mut next = i;
                while next < b.len() && b[next].is_ascii_whitespace() {
                    next += 1;
                }
                let call = next < b.len() && b[next] == b'(';
                if LABEL_LISTS.contains(&lower.as_str()) {
                    if call {
                        i = skip_group(b, next);
                    }
                } else if NOT_METRICS.contains(&lower.as_str()) || call {
                    // An operator, a keyword or a function.
                } else {
                    names.insert(word.to_owned());
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// Series names a query may select: crane's metrics (histograms as `_bucket`, `_sum`,
/// `_count`) and the recording rules.
fn allowed_series() -> BTreeSet<String> {
    let mut allowed = BTreeSet::new();
    for (name, kind) in METRICS.iter().chain(OPTIONAL_METRICS) {
        if *kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                allowed.insert(format!("{name}{suffix}"));
            }
        } else {
            allowed.insert((*name).to_owned());
        }
    }
    for rule in rules().iter().filter(|r| r.kind == "record") {
        allowed.insert(rule.name.clone());
    }
    allowed
}

/// Asserts `expr` selects at least one series and only allowed ones.
#[track_caller]
fn assert_known_metrics(what: &str, expr: &str, allowed: &BTreeSet<String>) -> BTreeSet<String> {
    let names = promql_metric_names(expr);
    assert!(!names.is_empty(), "{what}: `{expr}` selects no metric");
    let unknown: Vec<_> = names.difference(allowed).collect();
    assert!(
        unknown.is_empty(),
        "{what}: `{expr}` uses metrics crane does not export and no recording rule defines: \
         {unknown:?}\nknown: {allowed:?}"
    );
    names
}

#[test]
fn promql_metric_names_finds_only_metric_names() {
    let expr = r#"histogram_quantile(0.95, sum by (tool, le) (rate(crane_step_duration_seconds_bucket{tool!~"x|y", route="/a{b}"}[$__rate_interval])))
        / on (job) group_left (version) crane_build_info offset 5m
        or (sum without (instance) (crane:run_success_ratio:rate5m) > bool 1e6) unless count(up == 0) * +Inf"#;
    let names: Vec<_> = promql_metric_names(expr).into_iter().collect();
    assert_eq!(
        names,
        vec![
            "crane:run_success_ratio:rate5m",
            "crane_build_info",
            "crane_step_duration_seconds_bucket",
            "up"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// (a) promtool check rules / check config

#[test]
fn rule_file_and_example_config_pass_promtool_check() {
    let out = promtool(
        &["check", "rules", "deploy/prometheus/crane-rules.yml"],
        None,
    );
    assert!(
        out.status.success(),
        "promtool check rules failed:\n{}",
        describe(&out)
    );
    let out = promtool(
        &["check", "config", "deploy/prometheus/prometheus.yml"],
        None,
    );
    assert!(
        out.status.success(),
        "promtool check config deploy/prometheus/prometheus.yml failed:\n{}",
        describe(&out)
    );

    let rules = rules();
    let names: BTreeSet<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    for wanted in ALERTS.iter().chain(RECORDING_RULES) {
        assert!(names.contains(wanted), "crane-rules.yml lacks {wanted}");
    }
    // Every alert is actionable: a `for:`, a severity, and what to do.
    for alert in rules.iter().filter(|r| r.kind == "alert") {
        for key in [
            "for:",
            "severity:",
            "summary:",
            "description:",
            "runbook: docs/observability.md#",
        ] {
            assert!(
                alert.text.contains(key),
                "alert {} has no `{key}`:\n{}",
                alert.name,
                alert.text
            );
        }
    }
    // Every expression reads only what crane exports (plus Prometheus' own `up`) or what a
    // recording rule defines: promtool does not catch a misspelt metric name.
    let mut allowed = allowed_series();
    allowed.insert("up".to_owned());
    for rule in &rules {
        assert_known_metrics(&format!("rule {}", rule.name), &rule.expr, &allowed);
    }
}

// ---------------------------------------------------------------------------------------------
// (b) promtool test rules

#[test]
fn rule_unit_tests_pass_and_cover_every_alert_and_recording_rule() {
    let out = promtool(
        &["test", "rules", "deploy/prometheus/crane-rules.test.yml"],
        None,
    );
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("SUCCESS"),
        "promtool test rules failed:\n{}",
        describe(&out)
    );

    // Coverage: each alert has a case where it fires and one where it must stay silent.
    let tests = read_repo_file("deploy/prometheus/crane-rules.test.yml");
    let lines: Vec<&str> = tests
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let mut firing = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(name) = line.strip_prefix("alertname:") {
            match lines.get(i + 1).copied() {
                Some("exp_alerts: []") => silent.insert(name.trim().to_owned()),
                Some("exp_alerts:") => firing.insert(name.trim().to_owned()),
                other => panic!("alertname {name}: expected exp_alerts next, got {other:?}"),
            };
        }
    }
    let rules = rules();
    for alert in rules.iter().filter(|r| r.kind == "alert") {
        assert!(
            firing.contains(&alert.name),
            "crane-rules.test.yml has no case where {} fires",
            alert.name
        );
        assert!(
            silent.contains(&alert.name),
            "crane-rules.test.yml has no case where {} stays silent",
            alert.name
        );
    }
    // Each recording rule has an expected value somewhere.
    for rule in rules.iter().filter(|r| r.kind == "record") {
        assert!(
            lines.contains(&format!("- expr: {}", rule.name).as_str()),
            "crane-rules.test.yml does not test the recording rule {}",
            rule.name
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The Grafana dashboard

/// `(panel title, expr)` of every query, rows' nested panels included.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for panel in panels.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or_default().to_owned();
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap_or_default().to_owned();
                out.push((title.clone(), expr));
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

fn dashboard() -> Value {
    let text = read_repo_file("deploy/grafana/crane-dashboard.json");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("crane-dashboard.json: {e}"))
}

#[test]
fn dashboard_queries_use_only_known_metrics() {
    let dash = dashboard();
    let schema = dash["schemaVersion"].as_u64().unwrap_or(0);
    assert!(
        (36..=41).contains(&schema),
        "schemaVersion {schema}, want ~39"
    );
    assert!(dash["uid"].is_string() && dash["title"].is_string());
    let variables = dash["templating"]["list"].as_array().expect("templating");
    assert!(
        variables.iter().any(|v| v["name"] == "DS_PROMETHEUS"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "no Prometheus datasource variable DS_PROMETHEUS in {variables:?}"
    );

    // Every panel with queries uses the templated datasource, ids are unique, and panels fit
    // the 24-column grid.
    let mut ids = BTreeSet::new();
    let mut stack = vec![dash["panels"].clone()];
    let mut panels = 0;
    while let Some(list) = stack.pop() {
        for panel in list.as_array().into_iter().flatten() {
            panels += 1;
            let title = panel["title"].as_str().unwrap_or_default();
            let id = panel["id"].as_u64().expect("panel id");
            assert!(ids.insert(id), "duplicate panel id {id} ({title})");
            let grid = &panel["gridPos"];
            let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
            assert!(x + w <= 24, "panel {title} overflows the grid: {grid}");
            if panel["type"] != "row" {
                assert!(
                    panel["targets"].as_array().is_some_and(|t| !t.is_empty()),
                    "panel {title} has no query"
                );
                assert_eq!(
                    panel["datasource"]["uid"], "${DS_PROMETHEUS}",
                    "panel {title} does not use the DS_PROMETHEUS variable"
                );
                for target in panel["targets"].as_array().into_iter().flatten() {
                    assert_eq!(target["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}");
                }
            }
            stack.push(panel["panels"].clone());
        }
    }
    assert!(panels >= 11, "only {panels} panels");

    let allowed = allowed_series();
    let mut used = BTreeSet::new();
    for (title, expr) in dashboard_queries(&dash) {
        used.extend(assert_known_metrics(
            &format!("panel {title:?}"),
            &expr,
            &allowed,
        ));
    }
    // The panels the dashboard must have, by what they read.
    for wanted in [
        "crane:run_success_ratio:rate5m",
        "crane:run_latency_seconds:p50_5m",
        "crane:run_latency_seconds:p95_5m",
        "crane:run_latency_seconds:p99_5m",
        "crane:llm_cost_usd:rate1h",
        "crane_llm_tokens_total",
        "crane_tool_executions_total",
        "crane_active_runs",
        "crane_queue_depth",
        "crane:http_error_ratio:rate5m",
        "crane:plan_cache_hit_ratio:rate5m",
        "crane:plan_fallback_ratio:rate5m",
        "crane_llm_circuit_breaker_state",
        "crane_planning_duration_seconds_bucket",
    ] {
        assert!(used.contains(wanted), "no dashboard panel reads {wanted}");
    }
}

// ---------------------------------------------------------------------------------------------
// The documentation

#[test]
fn docs_cover_every_metric_rule_and_alert() {
    let docs = read_repo_file("docs/observability.md");
    for (name, kind) in METRICS.iter().chain(OPTIONAL_METRICS) {
        assert!(
            docs.lines()
                .any(|l| l.starts_with(&format!("| `{name}`")) && l.contains(kind)),
            "docs/observability.md has no metric-table row for {name} ({kind})"
        );
    }
    for rule in rules() {
        match rule.kind {
            // The alerts' runbook annotations link to these headings.
            "alert" => assert!(
                docs.lines()
                    .any(|l| l.trim() == format!("### {}", rule.name)),
                "docs/observability.md has no `### {}` section",
                rule.name
            ),
            _ => assert!(
                docs.contains(&format!("`{}`", rule.name)),
                "docs/observability.md does not mention the recording rule {}",
                rule.name
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (c) crane's /metrics through promtool check metrics

/// The model the wiremock upstream serves, with pricing so that cost is recorded.
const MODEL: &str = "test-model";

/// A Chat Completions answer whose content is `plan`, with usage 100 in / 20 out.
fn chat_answer(plan: &Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": MODEL,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": plan.to_string()},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    }))
}

/// `# TYPE` lines of a Prometheus text exposition: family name → type.
fn metric_types(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .collect()
}

#[tokio::test]
async fn crane_metrics_pass_promtool_check_metrics() {
    tool("promtool");
    // An OpenAI-compatible upstream: the first planning call succeeds (tokens, cost), later
    // ones get an answer that is not a plan (layer failure, fallback to the rule planner).
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(chat_answer(&json!({"steps": [
            {"tool": "calculator", "input": {"expression": "7*6"}, "reasoning": "r"}
        ]})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_string("this is not JSON"))
        .with_priority(2)
        .mount(&upstream)
        .await;
    let config_dir = tempfile::tempdir().expect("temp dir");
    let config = config_dir.path().join("crane.toml");
    std::fs::write(
        &config,
        format!(
            "[[llm.providers]]\nname = \"primary\"\nkind = \"openai\"\nbase_url = \"{}/v1\"\n\
             model = \"{MODEL}\"\napi_key = \"sk-test\"\nmax_retries = 0\n\n\
             [llm.pricing.{MODEL}]\ninput_per_million = 1.0\noutput_per_million = 2.0\n",
            upstream.uri()
        ),
    )
    .expect("write crane.toml");
    let config = config.to_str().expect("utf-8 path");
    let server = Server::start_debug(&["--config", config]).await;

    // LLM plan, then the same prompt from the plan cache.
    for _ in 0..2 {
        let run = server.run_prompt("what is 7 times 6").await;
        assert_eq!(run["status"], "completed", "{run}");
    }
    // The LLM answers garbage: the rule planner takes over (fallback)...
    let run = server.run_prompt("add a todo to buy milk").await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["plan"]["planner"]["source"], "fallback", "{run}");
    // ...or cannot plan the prompt either: a failed run without a plan.
    let run = server.run_prompt("book a flight").await;
    assert_eq!(run["status"], "failed", "{run}");
    // A step that needs a retry, a step that fails, a cancelled run, an unknown route.
    let run = server
        .run_steps(json!([{"tool": "debug_flaky", "input": {"fail_times": 1}}]))
        .await;
    assert_eq!(run["status"], "completed", "{run}");
    let run = server
        .run_steps(json!([{"tool": "debug_fail", "input": {"kind": "invalid_input"}}]))
        .await;
    assert_eq!(run["status"], "failed", "{run}");
    let slow = server
        .create_run(
            &json!({"prompt": "slow", "steps": [{"tool": "debug_sleep", "input": {"ms": 30000}}]}),
            false,
        )
        .await;
    let id = slow["run_id"].as_str().expect("run id");
    server.wait_status(id, "running").await;
    let (status, _, body) = server.post_empty(&format!("/runs/{id}/cancel")).await;
    assert!(status.is_success(), "cancel: {status} {body}");
    let run = server.wait_status(id, "cancelled").await;
    assert_terminal(&run);
    let (status, _, _) = server.get("/no-such-route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let response = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("metrics body");

    // Every family is one the rules, dashboard and docs know, with the same type; and this
    // scenario exercised all of them.
    let types = metric_types(&text);
    let known: BTreeMap<&str, &str> = METRICS.iter().chain(OPTIONAL_METRICS).copied().collect();
    for (name, kind) in &types {
        assert_eq!(
            known.get(name.as_str()).copied(),
            Some(kind.as_str()),
            "crane exports {name} ({kind}), which the metric list (rules, dashboard, \
             docs/observability.md) does not have with that type"
        );
    }
    let missing: Vec<_> = METRICS
        .iter()
        .map(|(name, _)| name)
        .filter(|name| !types.contains_key(**name))
        .collect();
    assert!(
        missing.is_empty(),
        "crane's /metrics lacks {missing:?} after a scenario that should emit them:\n{text}"
    );

    let out = promtool(&["check", "metrics"], Some(text.as_bytes()));
    assert!(
        out.status.success(),
        "`promtool check metrics` rejects crane's /metrics output (a crane problem, e.g. \
         metrics registered without a description have no `# HELP` line):\n{}\n--- /metrics ---\n{text}",
        describe(&out)
    );
}

// ---------------------------------------------------------------------------------------------
// (d) a real Prometheus scraping a real crane

/// A `prometheus` server on a temporary config and data dir; killed by PID when dropped.
struct Prometheus {
    child: std::process::Child,
    base: String,
    client: reqwest::Client,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`host:port`) every second and evaluating
    /// crane-rules.yml every second.
    async fn start(target: &str) -> Self {
        let bin = tool("prometheus");
        let dir = tempfile::tempdir().expect("temp dir");
        let rules = repo_file("deploy/prometheus/crane-rules.yml");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules:?}\n\
             scrape_configs:\n  - job_name: crane\n    scrape_interval: 1s\n    \
             static_configs:\n      - targets: [\"{target}\"]\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log file")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn prometheus");
        let prometheus = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
            dir,
        };
        let p = &prometheus;
        prometheus
            .poll("Prometheus to be ready", move || async move {
                let resp = p.client.get(format!("{}/-/ready", p.base)).send().await;
                resp.ok()
                    .filter(|r| r.status() == StatusCode::OK)
                    .map(|_| ())
            })
            .await;
        prometheus
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Polls `check` until it yields a value; fails with `what` and Prometheus' log at the
    /// deadline.
    async fn poll<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + PROM_DEADLINE;
        loop {
            if let Some(value) = check().await {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "gave up waiting for {what} after {PROM_DEADLINE:?}; prometheus log:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `GET /api/v1/...`: the HTTP status and the JSON body.
    async fn api(&self, path: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
        let url = reqwest::Url::parse_with_params(&format!("{}/api/v1/{path}", self.base), query)
            .expect("prometheus API url");
        let resp = self
            .client
            .get(url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET /api/v1/{path}: {e}"));
        let status = resp.status();
        let text = resp.text().await.expect("prometheus body");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("GET /api/v1/{path}: not JSON ({e}): {text}"));
        (status, body)
    }

    /// An instant query that must succeed; its result vector.
    async fn query(&self, promql: &str) -> Vec<Value> {
        let (status, body) = self.api("query", &[("query", promql)]).await;
        assert!(
            status == StatusCode::OK && body["status"] == "success",
            "query `{promql}` failed: {status} {body}"
        );
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("prometheus log ({}):\n{}", self.base, self.logs());
        }
        // Kill exactly the process this test started (by its PID), then reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of an instant-vector sample (`"value": [ts, "v"]`).
fn sample_value(sample: &Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no value in {sample}"))
}

/// `status` label → value of the `crane_runs_total` series Prometheus has now.
async fn runs_by_status(prometheus: &Prometheus) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for sample in prometheus.query("crane_runs_total").await {
        let status = sample["metric"]["status"].as_str().unwrap_or("").to_owned();
        *out.entry(status).or_default() += sample_value(&sample);
    }
    out
}

#[tokio::test]
async fn prometheus_scrapes_crane_and_evaluates_rules_and_dashboard_queries() {
    tool("prometheus");
    let server = Server::start(&[]).await;
    // Before Prometheus starts: one completed and one failed run, so that both series exist
    // from the first scrape on and later increases show in rate().
    let mut completed = 0.0;
    let mut failed = 0.0;
    for prompt in ["what is (41*7)+13", "book a flight"] {
        let run = server.run_prompt(prompt).await;
        match run["status"].as_str() {
            Some("completed") => completed += 1.0,
            Some("failed") => failed += 1.0,
            _ => panic!("unexpected run {run}"),
        }
    }
    assert_eq!((completed, failed), (1.0, 1.0));

    let target = server
        .base
        .strip_prefix("http://")
        .expect("http base")
        .to_owned();
    let prometheus = Prometheus::start(&target).await;

    let prom = &prometheus;

    // The first scrapes show crane's runs.
    let first = prometheus
        .poll(
            "the crane_runs_total series in Prometheus",
            move || async move {
                let seen = runs_by_status(prom).await;
                (seen.values().sum::<f64>() >= completed + failed).then_some(seen)
            },
        )
        .await;
    assert_eq!(first.get("completed"), Some(&completed), "{first:?}");
    assert_eq!(first.get("failed"), Some(&failed), "{first:?}");

    // More runs while Prometheus watches: 3 completed, 1 failed.
    for prompt in [
        "what is 7 times 6",
        "add a todo to buy milk",
        "book a flight",
        "show me all my tasks",
    ] {
        let run = server.run_prompt(prompt).await;
        match run["status"].as_str() {
            Some("completed") => completed += 1.0,
            Some("failed") => failed += 1.0,
            _ => panic!("unexpected run {run}"),
        }
    }
    assert_eq!((completed, failed), (4.0, 2.0));
    let seen = prometheus
        .poll("crane_runs_total to count every run", move || async move {
            let seen = runs_by_status(prom).await;
            (seen.get("completed").copied().unwrap_or(0.0) >= completed
                && seen.get("failed").copied().unwrap_or(0.0) >= failed)
                .then_some(seen)
        })
        .await;
    assert_eq!(seen.get("completed"), Some(&completed), "{seen:?}");
    assert_eq!(seen.get("failed"), Some(&failed), "{seen:?}");

    let up = prometheus.query("up{job=\"crane\"}").await;
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(sample_value(&up[0]), 1.0, "{up:?}");

    // The recording rule evaluates on live data: since the first scrape, 3 runs completed and
    // 1 failed, so the success ratio is 3/4.
    let ratio = prometheus
        .poll(
            "crane:run_success_ratio:rate5m to reach 0.75",
            move || async move {
                let result = prom.query("crane:run_success_ratio:rate5m").await;
                result
                    .first()
                    .map(sample_value)
                    .filter(|v| (v - 0.75).abs() < 1e-6)
            },
        )
        .await;
    assert!((ratio - 0.75).abs() < 1e-6, "{ratio}");
    let p95 = prometheus.query("crane:run_latency_seconds:p95_5m").await;
    assert_eq!(p95.len(), 1, "{p95:?}");
    let p95 = sample_value(&p95[0]);
    assert!(p95 > 0.0 && p95 <= 30.0, "p95 run latency {p95}");

    // Every rule loaded and evaluates without error; their queries (as Prometheus parsed them)
    // read only known series.
    let file_rules = rules();
    let loaded = prometheus
        .poll("every rule to have been evaluated", move || async move {
            let (status, body) = prom.api("rules", &[]).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let loaded: Vec<Value> = body["data"]["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                .collect();
            loaded
                .iter()
                .all(|r| r["health"] != "unknown")
                .then_some(loaded)
        })
        .await;
    assert_eq!(loaded.len(), file_rules.len(), "{loaded:?}");
    let mut allowed = allowed_series();
    allowed.insert("up".to_owned());
    for rule in &loaded {
        let name = rule["name"].as_str().unwrap_or_default();
        assert_eq!(
            rule["health"], "ok",
            "rule {name} fails to evaluate: {}",
            rule["lastError"]
        );
        assert_known_metrics(
            &format!("rule {name}"),
            rule["query"].as_str().unwrap_or_default(),
            &allowed,
        );
    }

    // Every dashboard query is valid PromQL for a real Prometheus (Grafana's interval
    // variables substituted); the run and tool panels show this crane's data.
    for (title, expr) in dashboard_queries(&dashboard()) {
        let promql = expr
            .replace("$__rate_interval", "5m")
            .replace("$__interval", "15s")
            .replace("$__range", "1h");
        let result = prometheus.query(&promql).await;
        if [
            "Run success rate",
            "Runs finished by status",
            "Active runs and queue depth",
            "Tool usage",
            "Planning latency by source",
        ]
        .contains(&title.as_str())
        {
            assert!(
                !result.is_empty(),
                "panel {title:?}: `{promql}` shows no data for a crane that ran runs"
            );
        }
    }
}
