//! Fuzz target: the rule planner (`crane_rules::plan`) on arbitrary UTF-8 prompts.
//!
//! Invariants (besides "never panics"):
//! - planning is deterministic;
//! - a plan has 1..=MAX_STEPS steps, each naming a built-in tool with an object input and
//!   a non-empty reasoning;
//! - a plan passes crane-core's plan validator (`validate_plan` with the built-in tools),
//!   numbered from 1 the way crane-core's rule adapter numbers it;
//! - a todo title holds no live `${...}` reference (titles are data: `${` is escaped), its
//!   unescaped text is taken verbatim from the prompt, and it is at most MAX_TITLE_CHARS
//!   characters;
//! - a rejection has a message, and the clause it names (if any) is verbatim from the prompt.
//!
//! Known crane-core bug guard: see `known_bug_escaped_title` (set CRANE_FUZZ_NO_GUARDS=1 to
//! turn the guard off and reproduce it).
#![no_main]

use std::sync::LazyLock;

use crane_core::PlanStep;
use crane_core::domain::reference;
use crane_core::planning::{PlanViolation, validate_plan};
use crane_core::tools::{ToolRegistry, builtin_registry};
use crane_rules::{MAX_STEPS, MAX_TITLE_CHARS, plan};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

static REGISTRY: LazyLock<ToolRegistry> = LazyLock::new(builtin_registry);
static GUARDS: LazyLock<bool> =
    LazyLock::new(|| std::env::var_os("CRANE_FUZZ_NO_GUARDS").is_none_or(|v| v.is_empty()));

const TOOLS: &[&str] = &[
    "calculator",
    "todo_add",
    "todo_list",
    "todo_complete",
    "todo_delete",
];

fuzz_target!(|data: &[u8]| {
    let Ok(prompt) = std::str::from_utf8(data) else {
        return;
    };
    let result = plan(prompt);
    assert_eq!(result, plan(prompt), "not deterministic: {prompt:?}");
    match result {
        Ok(steps) => {
            assert!(
                (1..=MAX_STEPS).contains(&steps.len()),
                "{prompt:?}: {} steps",
                steps.len()
            );
            for step in &steps {
                assert!(TOOLS.contains(&step.tool.as_str()), "{prompt:?}: {step:?}");
                assert!(step.input.is_object(), "{prompt:?}: {step:?}");
                assert!(!step.reasoning.is_empty(), "{prompt:?}: {step:?}");
                if step.tool == "todo_add" {
                    check_title(prompt, &step.input["title"]);
                }
            }
            let numbered: Vec<PlanStep> = steps
                .into_iter()
                .enumerate()
                .map(|(i, s)| PlanStep {
                    step_number: i as u32 + 1,
                    tool: s.tool,
                    input: s.input,
                    reasoning: s.reasoning,
                })
                .collect();
            if let Err(violations) = validate_plan(&numbered, &REGISTRY) {
                if *GUARDS && known_bug_escaped_title(&numbered, &violations) {
                    return;
                }
                panic!(
                    "the rule planner's plan for {prompt:?} fails validation: {violations:?}\nplan: {numbered:#?}"
                );
            }
        }
        Err(rejection) => {
            assert!(!rejection.message.is_empty(), "{prompt:?}");
            if let Some(clause) = &rejection.clause {
                assert!(
                    prompt.contains(clause.as_str()),
                    "{prompt:?}: rejected clause {clause:?} is not in the prompt"
                );
            }
        }
    }
});

fn check_title(prompt: &str, title: &Value) {
    let Value::String(title) = title else {
        panic!("{prompt:?}: todo_add title {title:?} is not a string");
    };
    // `${` is escaped, so the title holds no reference and resolves (unescapes) on its own.
    match reference::references_in(&Value::String(title.clone())) {
        Ok(refs) => assert!(
            refs.is_empty(),
            "{prompt:?}: title {title:?} has references"
        ),
        Err(e) => panic!("{prompt:?}: title {title:?} does not parse: {e:?}"),
    }
    let literal = match reference::resolve(&Value::String(title.clone()), &[]) {
        Ok(Value::String(s)) => s,
        other => panic!("{prompt:?}: title {title:?} resolves to {other:?}"),
    };
    assert!(
        literal.chars().count() <= MAX_TITLE_CHARS,
        "{prompt:?}: title of {} chars",
        literal.chars().count()
    );
    assert!(
        prompt.contains(literal.as_str()),
        "{prompt:?}: title {literal:?} is not verbatim from the prompt"
    );
}

/// crane-core bug (reported, not fixed here: crane-core is being changed by someone else):
/// `validate_plan` runs a tool's own check on the input as planned, before `$${` is
/// unescaped, so a todo title of at most MAX_TITLE_CHARS characters that holds `${` (planned
/// as `$${`, one character longer) fails validation as "the todo title is 501 characters",
/// although the tool, which sees the unescaped title at run time, accepts it. Returns true
/// when every violation is of that kind, so a long run keeps exploring.
fn known_bug_escaped_title(steps: &[PlanStep], violations: &[PlanViolation]) -> bool {
    violations.iter().all(|v| {
        v.path == "input"
            && v.message.starts_with("the todo title is ")
            && steps
                .get((v.step_number as usize).wrapping_sub(1))
                .and_then(|s| s.input.get("title"))
                .and_then(Value::as_str)
                .is_some_and(|title| {
                    title.contains("$${")
                        && title.replace("$${", "${").chars().count() <= MAX_TITLE_CHARS
                })
    })
}
