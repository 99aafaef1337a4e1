//! Robustness: `plan` never panics, is deterministic and returns well-formed plans on
//! arbitrary text up to 8 000 characters, on random concatenations of command fragments and on
//! adversarial prompts (pathological repetition, hundreds of clauses, long digit/operator
//! runs). Wall-clock time is not asserted; these inputs finish in milliseconds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crane_rules::{PlannedStep, plan};
use proptest::prelude::*;
use serde_json::Value;

const TOOLS: &[&str] = &[
    "calculator",
    "todo_add",
    "todo_list",
    "todo_complete",
    "todo_delete",
];

/// Every `${steps.N.todos.K.` in `s` points into list step N's page: K is not negative (a
/// negative index would count from the end of the page, not of the list) and below the page's
/// limit.
fn positions_are_in_the_page(s: &str, steps: &[PlannedStep]) -> bool {
    let mut rest = s;
    while let Some(pos) = rest.find("${steps.") {
        let tail = &rest[pos + 8..];
        let step: String = tail.chars().take_while(char::is_ascii_digit).collect();
        if let Some(after) = tail[step.len()..].strip_prefix(".todos.") {
            let index: String = after
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '-')
                .collect();
            let list = step
                .parse::<usize>()
                .ok()
                .and_then(|n| steps.get(n.wrapping_sub(1)));
            let limit = list
                .and_then(|l| l.input.get("limit"))
                .map_or(Some(100), Value::as_i64);
            match (index.parse::<i64>(), list, limit) {
                (Ok(k), Some(l), Some(limit)) if l.tool == "todo_list" && k >= 0 && k < limit => {}
                _ => return false,
            }
        }
        rest = tail;
    }
    true
}

/// Every `${steps.N.` in `s` refers to a step before `step` (1-based).
fn references_are_earlier(s: &str, step: usize) -> bool {
    let mut rest = s;
    while let Some(pos) = rest.find("${steps.") {
        let escaped = pos > 0 && rest.as_bytes()[pos - 1] == b'$';
        let tail = &rest[pos + 8..];
        let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
        if !escaped {
            match digits.parse::<usize>() {
                Ok(n) if n >= 1 && n < step => {}
                _ => return false,
            }
        }
        rest = tail;
    }
    true
}

/// Checks the shape of a plan (or rejection) and returns it.
fn well_formed(prompt: &str) -> Result<Vec<PlannedStep>, String> {
    let first = plan(prompt);
    assert_eq!(first, plan(prompt), "not deterministic for {prompt:?}");
    match first {
        Ok(steps) => {
            assert!(
                !steps.is_empty() && steps.len() <= 50,
                "{} steps",
                steps.len()
            );
            for (i, s) in steps.iter().enumerate() {
                assert!(TOOLS.contains(&s.tool.as_str()), "unknown tool {}", s.tool);
                assert!(!s.reasoning.is_empty());
                let obj = s.input.as_object().expect("input is an object");
                for v in obj.values() {
                    if let Value::String(text) = v {
                        assert!(!text.trim().is_empty(), "empty input in {s:?}");
                        assert!(
                            references_are_earlier(text, i + 1),
                            "bad reference in {s:?}"
                        );
                        assert!(
                            positions_are_in_the_page(text, &steps),
                            "position outside its list's page in {s:?}"
                        );
                    }
                }
                match s.tool.as_str() {
                    "calculator" => assert!(obj["expression"].is_string()),
                    "todo_add" => {
                        let title = obj["title"].as_str().expect("a title");
                        assert!(obj.len() == 1 && title.chars().count() <= 500);
                    }
                    "todo_list" => {
                        for (key, value) in obj {
                            match key.as_str() {
                                "done" => assert!(value.is_boolean()),
                                "order" => assert_eq!(value, "newest_first"),
                                "limit" => assert!(
                                    value.as_i64().is_some_and(|l| (101..=1000).contains(&l))
                                ),
                                other => panic!("todo_list input {other:?} in {s:?}"),
                            }
                        }
                    }
                    _ => assert!(
                        obj.len() == 1 && (obj.contains_key("id") || obj.contains_key("title"))
                    ),
                }
            }
            Ok(steps)
        }
        Err(r) => {
            assert!(!r.message.is_empty());
            if let Some(clause) = &r.clause {
                assert!(
                    prompt.contains(clause.as_str()),
                    "clause {clause:?} not verbatim"
                );
                assert!(r.message.contains(clause.as_str()));
            }
            Err(r.message)
        }
    }
}

const FRAGMENTS: &[&str] = &[
    "add a todo to buy milk",
    "add todo 2 apples",
    "remind me to call mom",
    "add buy eggs to my list",
    "show me all my tasks",
    "list my todos",
    "what's on my list",
    "show my completed todos",
    "mark buy milk as done",
    "mark it done",
    "complete the first one",
    "delete the last one",
    "delete the todo buy milk",
    "remove buy milk from my list",
    "I finished buy milk",
    "what is 7 times 6",
    "(41*7)+13",
    "sum of 1, 2 and 3",
    "average of 4, 8 and 15",
    "15% of 80",
    "add 2 and 3",
    "subtract 3 from 10",
    "multiply it by 2",
    "book a flight",
    "and",
    "then",
    "please",
    "\"quoted and then text\"",
    "1,000",
    "${steps.1.todo.id}",
    "?",
    "",
];

const JOINERS: &[&str] = &[
    " ",
    ", ",
    " and ",
    " then ",
    "; ",
    ". ",
    "\n",
    " and then ",
    "",
];

fn fragments() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            prop::sample::select(FRAGMENTS),
            prop::sample::select(JOINERS),
        ),
        0..40,
    )
    .prop_map(|parts| {
        parts
            .into_iter()
            .map(|(f, j)| format!("{f}{j}"))
            .collect::<String>()
    })
}

proptest! {
    // PROPTEST_CASES raises the case count for a longer local run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn never_panics_on_printable_text(s in "\\PC{0,8000}") {
        let _ = well_formed(&s);
    }

    #[test]
    fn never_panics_on_any_chars(chars in prop::collection::vec(any::<char>(), 0..8000)) {
        let s: String = chars.into_iter().collect();
        let _ = well_formed(&s);
    }

    #[test]
    fn never_panics_on_wordy_text(s in "([a-z]{1,8}|[0-9,.]{1,6}|[-+*/^%()?!;,.'\"]){0,400}( |\n){0,1}") {
        let _ = well_formed(&s);
    }

    #[test]
    fn never_panics_on_command_fragments(s in fragments()) {
        let _ = well_formed(&s);
    }

    #[test]
    fn quoted_titles_are_kept_verbatim(title in "[A-Za-zÀ-ÿ0-9][A-Za-zÀ-ÿ0-9 ,.!?;:'&@#$%()-]{0,40}[A-Za-zÀ-ÿ0-9!?.)]") {
        let steps = well_formed(&format!("add a todo \"{title}\"")).unwrap();
        prop_assert_eq!(steps.len(), 1);
        prop_assert_eq!(&steps[0].tool, "todo_add");
        prop_assert_eq!(steps[0].input["title"].as_str().unwrap(), title.trim().replace("${", "$${"));
    }

    #[test]
    fn plain_titles_are_kept_verbatim(words in prop::collection::vec(
        prop::sample::select(&["milk", "Bread", "café", "ÜBER", "2", "apples", "X-ray", "naïve",
            "東京", "🥛", "mom's", "bread,", "Dr.", "(maybe)", "and", "butter", "50%", "a@b.c"][..]),
        1..8,
    )) {
        // Every word is the title's, a dangling "and" at either end too; only "and" alone
        // ("add a todo to and") is a conjunction with no title after it.
        prop_assume!(words.iter().any(|w| *w != "and"));
        let title = words.join(" ");
        let steps = well_formed(&format!("add a todo to {title}")).unwrap();
        prop_assert_eq!(steps.len(), 1);
        let want = title.trim_end_matches([',', '.']);
        prop_assert_eq!(steps[0].input["title"].as_str().unwrap(), want);
    }
}

fn repeat_to(s: &str, len: usize) -> String {
    s.chars().cycle().take(len).collect()
}

#[test]
fn adversarial_prompts_are_answered() {
    let mut prompts: Vec<String> = [
        "add a todo to ",
        "1+",
        "and ",
        "and then ",
        "(",
        "((1)",
        "9",
        "-",
        "1,",
        "1, ",
        "what is 1 and ",
        "mark a and ",
        "min(1, ",
        "max of 1, min of 1, ",
        "sum of ",
        "sum of 1,000, ",
        "and please ",
        "please ",
        "the first one and ",
        "delete it and ",
        "list my todos then ",
        "\"and ",
        "one hundred and ",
        "what percent of 1 and ",
        "x is ",
        "2^",
        "to the power of 2 ",
        "half of ",
        "add 1 and ",
        "a. ",
        "remove 3 from 10 and ",
        "i have just finished ",
        "what is (1 and ",
        "complete x and ",
        "${steps.1.",
        "😀",
    ]
    .iter()
    .map(|s| repeat_to(s, 8000))
    .collect();
    prompts.push(vec!["list my todos"; 400].join(", "));
    prompts.push(vec!["add a todo to x"; 400].join(", "));
    prompts.push(vec!["what is 1 + 1"; 400].join("; "));
    prompts.push(format!("add a todo to {}", "a".repeat(7980)));
    prompts.push(format!("what is {}", "1".repeat(7990)));
    for p in &prompts {
        assert!(p.chars().count() <= 8000);
        let _ = well_formed(p);
    }
    // Hundreds of clauses are planned, then refused by the step limit.
    let r = plan(&vec!["list my todos"; 400].join(", ")).unwrap_err();
    assert_eq!(r.message, "the prompt asks for 400 steps; the limit is 50");
}
