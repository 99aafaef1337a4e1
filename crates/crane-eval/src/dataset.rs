//! Eval datasets: JSONL golden sets, one case per line (blank lines are skipped).
//!
//! ```json
//! {"id": "calc-times", "prompt": "what is 7 times 6", "tags": ["calculator"],
//!  "setup_todos": ["buy milk"],
//!  "expect": {"steps": [{"tool": "calculator", "input": {"expression": "7 * 6"}}],
//!             "result": {"value": 42}}}
//! ```
//!
//! `expect` holds what a correct run does:
//! - `steps`: the expected plan, in order. A step without `input` checks the tool only.
//! - `args`: `exact` (default) or `normalized` (whitespace-insensitive expressions, trimmed
//!   and whitespace-collapsed strings, numbers by value).
//! - `result`: a subset of the run's result (objects by key, arrays element-wise, numbers
//!   within `tolerance`, relative, default 1e-9).
//! - `reject` (the planner refuses: no plan, the run fails or the prompt is refused), or
//!   `fail` (planned, then the run fails), each with optional `error_contains` substrings.
//! - `max_latency_ms`: a per-case latency bound.
//!
//! Unknown keys are errors, so a typo cannot silently turn a check off. Every error names the
//! file and line.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One eval case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Unique within the dataset.
    pub id: String,
    pub prompt: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Todos added (in order) before the prompt runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub setup_todos: Vec<String>,
    pub expect: Expect,
    /// Free text for humans; ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// 1-based line in the dataset file (set by the loader).
    #[serde(skip)]
    pub line: usize,
}

/// How tool inputs are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ArgMatch {
    /// JSON equality.
    #[default]
    Exact,
    /// Whitespace-insensitive `expression`s, trimmed and whitespace-collapsed strings,
    /// numbers by value.
    Normalized,
}

/// What a correct run does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<ExpectedStep>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<ArgMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reject: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_contains: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency_ms: Option<f64>,
}

/// One expected plan step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedStep {
    pub tool: String,
    /// `None`: only the tool is checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
}

/// A dataset that could not be loaded; `Display` names `file:line`.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("could not read dataset {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("dataset {} has no cases", path.display())]
    Empty { path: PathBuf },
}

/// Reads and checks a JSONL dataset.
pub fn load(path: &Path) -> Result<Vec<Case>, DatasetError> {
    let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

/// Parses dataset text (`path` only names the source in errors).
pub fn parse(path: &Path, text: &str) -> Result<Vec<Case>, DatasetError> {
    let mut cases = Vec::new();
    let mut ids = HashSet::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |message: String| DatasetError::Line {
            path: path.to_owned(),
            line,
            message,
        };
        if raw.trim().is_empty() {
            continue;
        }
        let mut case: Case =
            serde_json::from_str(raw).map_err(|e| err(format!("invalid case: {e}")))?;
        case.line = line;
        check(&case).map_err(err)?;
        if !ids.insert(case.id.clone()) {
            return Err(err(format!("duplicate case id '{}'", case.id)));
        }
        cases.push(case);
    }
    if cases.is_empty() {
        return Err(DatasetError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(cases)
}

/// Checks that a case's expectations are coherent.
fn check(case: &Case) -> Result<(), String> {
    let e = &case.expect;
    if case.id.trim().is_empty() {
        return Err("the case id is empty".into());
    }
    if e.reject && e.fail {
        return Err(format!(
            "case '{}': expect.reject and expect.fail exclude each other",
            case.id
        ));
    }
    if e.reject && (e.steps.is_some() || e.result.is_some()) {
        return Err(format!(
            "case '{}': a rejected prompt has no plan or result; remove expect.steps/expect.result",
            case.id
        ));
    }
    if e.fail && e.result.is_some() {
        return Err(format!(
            "case '{}': a failing run has no result; remove expect.result",
            case.id
        ));
    }
    if !(e.error_contains.is_empty() || e.reject || e.fail) {
        return Err(format!(
            "case '{}': expect.error_contains needs expect.reject or expect.fail",
            case.id
        ));
    }
    if let Some(t) = e.tolerance
        && !(t.is_finite() && t >= 0.0)
    {
        return Err(format!(
            "case '{}': expect.tolerance must be a finite number >= 0",
            case.id
        ));
    }
    if let Some(ms) = e.max_latency_ms
        && !(ms.is_finite() && ms > 0.0)
    {
        return Err(format!(
            "case '{}': expect.max_latency_ms must be a positive number",
            case.id
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Vec<Case>, DatasetError> {
        parse(Path::new("set.jsonl"), text)
    }

    #[test]
    fn parses_cases_and_skips_blank_lines() {
        let cases = p(concat!(
            r#"{"id": "a", "prompt": "1+1", "tags": ["calc"], "expect": {"steps": [{"tool": "calculator"}], "result": {"value": 2}}}"#,
            "\n\n",
            r#"{"id": "b", "prompt": "x", "expect": {"reject": true, "error_contains": ["x"]}}"#,
            "\n"
        ))
        .unwrap();
        assert_eq!(cases.len(), 2);
        assert_eq!(cases[1].line, 3);
        assert_eq!(cases[0].expect.steps.as_ref().unwrap()[0].input, None);
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let ok = r#"{"id": "a", "prompt": "1+1", "expect": {}}"#;
        let e = p(&format!("{ok}\n{{not json\n")).unwrap_err().to_string();
        assert!(e.starts_with("set.jsonl:2: "), "{e}");
        let e = p(&format!("{ok}\n{ok}\n")).unwrap_err().to_string();
        assert!(e.contains("set.jsonl:2") && e.contains("duplicate"), "{e}");
        let e = p(r#"{"id": "a", "prompt": "x", "expect": {"reslt": 1}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("set.jsonl:1") && e.contains("reslt"), "{e}");
        let e = p(r#"{"id": "a", "prompt": "x", "expect": {"reject": true, "fail": true}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("exclude"), "{e}");
        assert!(matches!(p("\n\n"), Err(DatasetError::Empty { .. })));
    }
}
