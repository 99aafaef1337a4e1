//! Plan validation, shared by every planner: known tools, inputs matching the tool's schema,
//! references only to earlier steps and to fields their output has, and each tool's own checks.
//! Every violation names the step number and the JSON path.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::domain::PlanStep;
use crate::domain::reference::{self, Reference, Segment};
use crate::tools::ToolRegistry;

/// Most steps in one plan.
pub const MAX_STEPS: usize = 50;

/// One problem with a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanViolation {
    /// 1-based step number (0 for the plan as a whole).
    pub step_number: u32,
    /// JSON path inside the step, e.g. `input.title`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for PlanViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.step_number == 0 {
            write!(f, "{}: {}", self.path, self.message)
        } else {
            write!(
                f,
                "step {} {}: {}",
                self.step_number, self.path, self.message
            )
        }
    }
}

/// Validates plan steps; returns every violation found.
pub fn validate_plan(
    steps: &[PlanStep],
    registry: &ToolRegistry,
) -> Result<(), Vec<PlanViolation>> {
    let mut out = Vec::new();
    let violation = |step: u32, path: &str, message: String| PlanViolation {
        step_number: step,
        path: path.to_owned(),
        message,
    };
    if steps.is_empty() {
        out.push(violation(0, "steps", "the plan has no steps".into()));
    }
    if steps.len() > MAX_STEPS {
        out.push(violation(
            0,
            "steps",
            format!(
                "the plan has {} steps; the limit is {MAX_STEPS}",
                steps.len()
            ),
        ));
    }
    for (i, step) in steps.iter().enumerate() {
        let n = step.step_number;
        if n as usize != i + 1 {
            out.push(violation(
                n,
                "step_number",
                format!("expected step number {}", i + 1),
            ));
        }
        let Some(tool) = registry.get(&step.tool) else {
            out.push(violation(
                n,
                "tool",
                format!(
                    "unknown tool '{}'; available tools: {}",
                    step.tool,
                    registry.names().join(", ")
                ),
            ));
            continue;
        };
        if !step.input.is_object() {
            out.push(violation(
                n,
                "input",
                "the input must be a JSON object".into(),
            ));
            continue;
        }
        let refs = match reference::references_in(&step.input) {
            Ok(refs) => refs,
            Err((path, e)) => {
                out.push(violation(n, &path, e.to_string()));
                continue;
            }
        };
        let mut skip = Vec::new();
        for (path, r) in &refs {
            // Before this step both by number and by position (a step numbered past its
            // position must not reach a step that does not exist).
            if r.step >= n || r.step as usize > i {
                out.push(violation(
                    n,
                    path,
                    format!(
                        "reference {r} points to step {}, which does not run before step {n}",
                        r.step
                    ),
                ));
                continue;
            }
            let Some(target) = (r.step as usize).checked_sub(1).and_then(|k| steps.get(k)) else {
                continue;
            };
            if let Some(target_tool) = registry.get(&target.tool)
                && let Err(at) = check_path(target_tool.output_schema(), r)
            {
                out.push(violation(
                    n,
                    path,
                    format!(
                        "reference {r}: step {} ({}) output has no '{at}'",
                        r.step, target.tool
                    ),
                ));
            }
            skip.push(path.clone());
        }
        let violations = registry.validate_input(&step.tool, &step.input, &skip);
        let schema_ok = violations.is_empty();
        for v in violations {
            out.push(violation(n, &v.path, v.message));
        }
        // The tool's own check sees the input as the tool will: `$${` escapes (literal `${`
        // in titles) turned back into `${`.
        if schema_ok
            && refs.is_empty()
            && let Err(message) = reference::resolve(&step.input, &[])
                .map_err(|e| e.to_string())
                .and_then(|input| tool.check(&input))
        {
            out.push(violation(n, "input", message));
        }
    }
    if out.is_empty() { Ok(()) } else { Err(out) }
}

/// Walks a JSON schema along a reference path; `Err` carries the first segment not found.
fn check_path(schema: &Value, r: &Reference) -> Result<(), String> {
    let mut current = schema;
    let mut at = String::new();
    for seg in &r.path {
        current = deref(schema, current);
        if !at.is_empty() {
            at.push('.');
        }
        let next = match seg {
            Segment::Key(k) => {
                at.push_str(k);
                match current.get("properties") {
                    Some(props) => props.get(k),
                    // No declared properties: nothing to check against.
                    None => return Ok(()),
                }
            }
            Segment::Index(i) => {
                at.push_str(&i.to_string());
                match current.get("items") {
                    Some(items) => Some(items),
                    None if current.get("type") == Some(&Value::from("array")) => return Ok(()),
                    None => None,
                }
            }
        };
        current = next.ok_or_else(|| at.clone())?;
    }
    Ok(())
}

/// Follows a local `$ref` (`#/$defs/Name`) once.
fn deref<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/"))
        .and_then(|p| root.pointer(&format!("/{p}")))
        .unwrap_or(schema)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::builtin_registry;
    use serde_json::json;

    fn step(n: u32, tool: &str, input: Value) -> PlanStep {
        PlanStep {
            step_number: n,
            tool: tool.into(),
            input,
            reasoning: String::new(),
        }
    }

    #[test]
    fn valid_plan_with_reference_passes() {
        let reg = builtin_registry();
        let steps = vec![
            step(1, "todo_add", json!({"title": "buy milk"})),
            step(2, "todo_complete", json!({"id": "${steps.1.todo.id}"})),
            step(3, "todo_list", json!({})),
            step(4, "todo_delete", json!({"id": "${steps.3.todos.-1.id}"})),
        ];
        validate_plan(&steps, &reg).unwrap();
    }

    #[test]
    fn a_step_numbered_past_its_position_cannot_reference_past_the_end() {
        // Found by the validate_plan fuzz target: this panicked with an index out of bounds.
        let reg = builtin_registry();
        let steps = vec![step(
            5,
            "todo_complete",
            json!({"id": "${steps.3.todo.id}"}),
        )];
        let errors = validate_plan(&steps, &reg).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|v| v.to_string().contains("does not run before")),
            "{errors:?}"
        );
    }

    #[test]
    fn escaped_text_is_checked_as_the_tool_will_store_it() {
        // Found by the rules_plan fuzz target: `$${` is one character longer than the `${`
        // the tool stores, so a 500-character title was refused as 501.
        let reg = builtin_registry();
        let title = format!("$${}{}", "{", "a".repeat(498));
        validate_plan(&[step(1, "todo_add", json!({ "title": title }))], &reg).unwrap();
        let too_long = format!("$${}{}", "{", "a".repeat(499));
        assert!(validate_plan(&[step(1, "todo_add", json!({ "title": too_long }))], &reg).is_err());
    }

    #[test]
    fn each_violation_names_step_and_path() {
        let reg = builtin_registry();
        let steps = vec![
            step(1, "todo_add", json!({"title": 42})),
            step(2, "send_email", json!({})),
            step(3, "todo_complete", json!({"id": "${steps.4.todo.id}"})),
            step(4, "todo_complete", json!({"id": "${steps.1.todo.idd}"})),
            step(5, "calculator", json!({"expression": "2 +* x"})),
        ];
        let v = validate_plan(&steps, &reg).unwrap_err();
        let text: Vec<String> = v.iter().map(|v| v.to_string()).collect();
        assert!(text[0].starts_with("step 1 input.title: "), "{text:?}");
        assert!(
            text[1].starts_with("step 2 tool: unknown tool 'send_email'"),
            "{text:?}"
        );
        assert!(
            text[2].starts_with("step 3 input.id: reference ${steps.4.todo.id} points to step 4"),
            "{text:?}"
        );
        assert_eq!(
            text[3],
            "step 4 input.id: reference ${steps.1.todo.idd}: step 1 (todo_add) output has no 'todo.idd'"
        );
        assert!(
            text[4].starts_with("step 5 input: invalid expression"),
            "{text:?}"
        );
    }

    #[test]
    fn paging_fields_and_match_kinds_can_be_referenced() {
        let reg = builtin_registry();
        let steps = vec![
            step(1, "todo_list", json!({"order": "newest_first", "limit": 1})),
            step(2, "todo_delete", json!({"id": "${steps.1.todos.0.id}"})),
            step(3, "todo_list", json!({"limit": 5})),
            step(
                4,
                "todo_list",
                json!({"limit": 5, "cursor": "${steps.3.next_cursor}"}),
            ),
            step(
                5,
                "todo_add",
                json!({"title": "after ${steps.2.matched} match"}),
            ),
        ];
        validate_plan(&steps, &reg).unwrap();
        let steps = vec![
            step(1, "todo_list", json!({})),
            step(2, "todo_list", json!({"cursor": "${steps.1.next_page}"})),
        ];
        let v = validate_plan(&steps, &reg).unwrap_err();
        assert_eq!(
            v[0].to_string(),
            "step 2 input.cursor: reference ${steps.1.next_page}: step 1 (todo_list) output has no 'next_page'"
        );
    }

    #[test]
    fn a_literal_cursor_is_checked_at_plan_time() {
        let reg = builtin_registry();
        let v =
            validate_plan(&[step(1, "todo_list", json!({"cursor": "page2"}))], &reg).unwrap_err();
        assert!(
            v[0].to_string().starts_with(
                "step 1 input: invalid cursor 'page2': not a next_cursor returned by todo_list"
            ),
            "{v:?}"
        );
        let v =
            validate_plan(&[step(1, "todo_list", json!({"order": "soonest"}))], &reg).unwrap_err();
        assert_eq!(v[0].path, "input.order", "{v:?}");
    }

    #[test]
    fn empty_plans_and_bad_selectors_are_rejected() {
        let reg = builtin_registry();
        assert!(validate_plan(&[], &reg).is_err());
        let v = validate_plan(&[step(1, "todo_delete", json!({}))], &reg).unwrap_err();
        assert_eq!(
            v[0].to_string(),
            "step 1 input: give the todo's \"id\" or \"title\""
        );
        let v = validate_plan(&[step(1, "todo_add", json!({"title": "  "}))], &reg).unwrap_err();
        assert!(v[0].message.contains("title is empty"));
    }
}
