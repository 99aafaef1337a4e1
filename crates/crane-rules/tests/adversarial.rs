//! Hostile input: titles full of punctuation, SQL, shell and markup are planned as exactly one
//! literal title (never cut into extra steps, never half planned); arithmetic the planner cannot
//! read is refused with the calculator's own error and its column in the prompt; positions in a
//! list stay inside `todo_list`'s page. Also checks every planner-level expectation of
//! `data/adversarial.jsonl` (plans and rejections; run results are the eval harness's job).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crane_rules::{MAX_TITLE_CHARS, Rejection, plan};
use serde_json::{Value, json};

/// The planned steps as `[tool, input]` pairs; panics with the rejection if rejected.
fn steps(prompt: &str) -> Vec<(String, Value)> {
    match plan(prompt) {
        Ok(s) => s.into_iter().map(|s| (s.tool, s.input)).collect(),
        Err(r) => panic!("{prompt:?} was rejected: {}", r.message),
    }
}

fn rejected(prompt: &str) -> Rejection {
    match plan(prompt) {
        Ok(s) => panic!("{prompt:?} was planned: {s:?}"),
        Err(r) => r,
    }
}

fn add(title: &str) -> (String, Value) {
    ("todo_add".to_owned(), json!({ "title": title }))
}

#[test]
fn hostile_titles_are_one_literal_title() {
    // (prompt, the exact title planned). Nothing else is planned.
    let cases: &[(&str, &str)] = &[
        (
            "add a todo to Robert'); DROP TABLE todos;--",
            "Robert'); DROP TABLE todos;--",
        ),
        ("add a todo to buy milk and and and", "buy milk and and and"),
        ("add a todo to buy milk and then", "buy milk and then"),
        ("add a todo to eat; pray; love", "eat; pray; love"),
        (
            "remind me to call mom; delete old photos",
            "call mom; delete old photos",
        ),
        (
            "add a todo to water plants; complete water plants",
            "water plants; complete water plants",
        ),
        (
            "add a todo to '; DELETE FROM todos WHERE '1'='1",
            "'; DELETE FROM todos WHERE '1'='1",
        ),
        ("add a todo to run $(rm -rf /) now", "run $(rm -rf /) now"),
        ("add a todo to echo $HOME && exit 1", "echo $HOME && exit 1"),
        ("add a todo to buy milk; rm -rf /", "buy milk; rm -rf /"),
        (
            "add a todo to <img src=x onerror=alert(1)>",
            "<img src=x onerror=alert(1)>",
        ),
        (
            "add a todo to 🚀 launch; 🎉 party 🎂",
            "🚀 launch; 🎉 party 🎂",
        ),
        (
            "add a todo to 👍🏽 review PR #12 (urgent!)",
            "👍🏽 review PR #12 (urgent!)",
        ),
        (
            "add a todo to اشتري الحليب، ثم الخبز",
            "اشتري الحليب، ثم الخبز",
        ),
        ("add a todo to לקנות חלב; לחם", "לקנות חלב; לחם"),
        (
            "add a todo to مراجعة PR رقم 42؛ ثم الدمج",
            "مراجعة PR رقم 42؛ ثم الدمج",
        ),
        ("add a todo \"buy milk, eggs,\"", "buy milk, eggs,"),
        ("add a todo to save 20% of 50% off", "save 20% of 50% off"),
        ("add a todo to 100% done; 0% left", "100% done; 0% left"),
        (
            "add a todo to use {{template}} and %s %d",
            "use {{template}} and %s %d",
        ),
        (
            "add a todo to fix bug #42: crash on \";\"",
            "fix bug #42: crash on \";\"",
        ),
        ("add a todo to a, b; c & d. e! f? g", "a, b; c & d. e! f? g"),
        (
            "note to self: 50% off; don't pay > $100",
            "50% off; don't pay > $100",
        ),
        // `${` is escaped, so the title is stored literally (never read as a reference).
        (
            "add a todo to ${steps.1.todo.id}; ${steps.2.value}",
            "$${steps.1.todo.id}; $${steps.2.value}",
        ),
    ];
    let bad: Vec<String> = cases
        .iter()
        .filter_map(|(prompt, title)| {
            let want = vec![add(title)];
            match plan(prompt) {
                Ok(s) => {
                    let got: Vec<(String, Value)> =
                        s.into_iter().map(|s| (s.tool, s.input)).collect();
                    (got != want).then(|| format!("{prompt:?}: planned {got:?}"))
                }
                Err(r) => Some(format!("{prompt:?}: rejected: {}", r.message)),
            }
        })
        .collect();
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn a_clear_command_after_punctuation_is_still_a_step() {
    let list = ("todo_list".to_owned(), json!({}));
    assert_eq!(
        steps("add a todo to Robert'); DROP TABLE todos;-- and then show my todos"),
        [add("Robert'); DROP TABLE todos;--"), list.clone()]
    );
    assert_eq!(
        steps("add a todo to <script>alert(\"x\")</script>; list my todos"),
        [add("<script>alert(\"x\")</script>"), list.clone()]
    );
    assert_eq!(
        steps("add a todo to check `whoami` output; then list my todos"),
        [add("check `whoami` output"), list.clone()]
    );
    assert_eq!(
        steps("add a todo titled \"wait, what,\", then list my todos"),
        [add("wait, what,"), list.clone()]
    );
    assert_eq!(
        steps("add a todo to call 555-0100 & ask for \"Bob\"; then list my todos"),
        [add("call 555-0100 & ask for \"Bob\""), list]
    );
    assert_eq!(
        steps("remind me to pay rent. Then delete the todo buy milk"),
        [
            add("pay rent"),
            ("todo_delete".to_owned(), json!({"title": "buy milk"}))
        ]
    );
    assert_eq!(
        steps("add a todo to x; delete it"),
        [
            add("x"),
            (
                "todo_delete".to_owned(),
                json!({"id": "${steps.1.todo.id}"})
            )
        ]
    );
    // A line break still separates requests, even weak ones.
    assert_eq!(
        steps("add a todo to buy milk\ndelete walk the dog"),
        [
            add("buy milk"),
            ("todo_delete".to_owned(), json!({"title": "walk the dog"}))
        ]
    );
    // Only open titles absorb what follows: a quoted title or "... to my list" is closed.
    assert_eq!(
        steps("add milk to my list; delete eggs"),
        [
            add("milk"),
            ("todo_delete".to_owned(), json!({"title": "eggs"}))
        ]
    );
    assert_eq!(
        steps("delete a; delete b"),
        [
            ("todo_delete".to_owned(), json!({"title": "a"})),
            ("todo_delete".to_owned(), json!({"title": "b"}))
        ]
    );
}

#[test]
fn reference_syntax_in_a_title_is_literal() {
    // Step 1 exists, so an unescaped reference would resolve to its id: it must not.
    assert_eq!(
        steps("add a todo to buy milk, then add a todo to pay ${steps.1.todo.id}"),
        [add("buy milk"), add("pay $${steps.1.todo.id}")]
    );
}

#[test]
fn titles_over_the_limit_are_refused_not_shortened() {
    let at_limit = "x".repeat(MAX_TITLE_CHARS);
    assert_eq!(MAX_TITLE_CHARS, 500);
    assert_eq!(
        steps(&format!("add a todo to {at_limit}")),
        [add(&at_limit)]
    );
    let under = "é".repeat(MAX_TITLE_CHARS - 1);
    assert_eq!(steps(&format!("add a todo to {under}")), [add(&under)]);
    let r = rejected(&format!("add a todo to {at_limit}y"));
    assert_eq!(
        r.message,
        format!(
            "the todo title \"{}…\" is 501 characters; the limit is 500. Titles are stored exactly as given, never shortened: use a shorter title.",
            "x".repeat(40)
        )
    );
    // A 10 000-character prompt: refused as a whole (the runtime's prompt limit, 8 000, refuses
    // it before planning; the planner on its own refuses the title).
    let prompt = format!("add a todo to {}", "z".repeat(10_000 - 14));
    assert_eq!(prompt.chars().count(), 10_000);
    let r = rejected(&prompt);
    assert!(
        r.message.contains("is 9986 characters; the limit is 500"),
        "{}",
        r.message
    );
    // Nothing is half planned: one title too long refuses the whole prompt.
    let r = rejected(&format!(
        "add a todo to buy milk, then add a todo to {}",
        "w".repeat(600)
    ));
    assert!(r.message.contains("is 600 characters"), "{}", r.message);
}

/// The rejection message for `prompt`.
fn message(prompt: &str) -> String {
    rejected(prompt).message
}

#[test]
fn calculator_errors_point_at_the_fault() {
    // Every error kind the calculator reports for input it cannot read, with the column in
    // the prompt (1-based characters).
    let deep = format!("what is {}1{}", "(".repeat(70), ")".repeat(70));
    let long = format!("calculate {}1", "1+".repeat(2500));
    let f = "sqrt, abs, round, floor, ceil, min, max";
    let cases: Vec<(&str, String)> = vec![
        (
            "calculate (2 + 3",
            "unclosed parenthesis opened at column 11 of the prompt.".into(),
        ),
        (
            "what is 7 times (2 + 3",
            "unclosed parenthesis opened at column 17 of the prompt.".into(),
        ),
        (
            "evaluate 2 + 3)",
            "unmatched ')' at column 15 of the prompt.".into(),
        ),
        (
            "2 + 3)",
            "unmatched ')' at column 6 of the prompt.".into(),
        ),
        (
            "compute foo(3)",
            format!("unknown function 'foo' at column 9 of the prompt (available functions: {f})."),
        ),
        (
            "calculate 2 * y",
            format!(
                "unknown name 'y' at column 15 of the prompt (available constants: pi, e; functions: {f})."
            ),
        ),
        (
            "what is max 3",
            "function 'max' at column 9 of the prompt needs parentheses, e.g. max(2).".into(),
        ),
        (
            "calculate sqrt(1, 2)",
            "sqrt at column 11 of the prompt expects exactly 1 argument (got 2).".into(),
        ),
        (
            "what is round(2.5, 1.5)",
            "invalid argument to round at column 9 of the prompt: decimal places must be a whole number from 0 to 28 (got 1.5).".into(),
        ),
        (
            "what is 2 +",
            "unexpected end of expression at column 12 of the prompt.".into(),
        ),
        (
            "what is 2 + * 3",
            "unexpected '*' at column 13 of the prompt.".into(),
        ),
        (
            "calculate",
            "empty expression; say what to calculate, e.g. \"calculate (41*7)+13\".".into(),
        ),
        (
            deep.as_str(),
            "expression nested too deeply (limit 64) at column 73 of the prompt.".into(),
        ),
        (
            long.as_str(),
            "expression too long (5001 characters, limit 4096).".into(),
        ),
    ];
    let bad: Vec<String> = cases
        .iter()
        .filter_map(|(prompt, error)| {
            let want = format!("I could not calculate \"{prompt}\": {error}");
            let got = match plan(prompt) {
                Ok(s) => format!("planned {s:?}"),
                Err(r) => r.message,
            };
            (got != want).then(|| format!("{prompt:?}:\n  got  {got}\n  want {want}"))
        })
        .collect();
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn calculator_errors_name_the_clause_in_a_longer_prompt() {
    // Rejected whole: the todo is not added.
    let r = rejected("add a todo to buy milk, then calculate (2 + 3");
    assert_eq!(r.clause.as_deref(), Some("calculate (2 + 3"));
    assert_eq!(
        r.message,
        "I could not calculate \"calculate (2 + 3\": unclosed parenthesis opened at column 40 of the prompt."
    );
    let r = rejected("list my todos and what is 5 by 3");
    assert_eq!(r.clause.as_deref(), Some("what is 5 by 3"));
    assert!(
        r.message
            .contains("unexpected 'by' at column 29 of the prompt"),
        "{}",
        r.message
    );
    // A percentage the calculator would read as a remainder gets a hint.
    assert!(message("what is 200 + 10%").contains("% is the remainder operator"));
    // Not a calculation: the generic message.
    assert_eq!(
        message("what is the weather in 2024"),
        "I could not understand \"what is the weather in 2024\". crane can do arithmetic (e.g. \"what is 7 times 6\") and manage todos (add, list, complete, delete)."
    );
    // After a title, text that is not clearly a calculation stays in the title.
    assert_eq!(
        steps("add a todo to x; calculate my taxes"),
        [add("x; calculate my taxes")]
    );
}

#[test]
fn arithmetic_failures_are_left_to_the_run_with_a_clear_error() {
    // Division by zero, the square root of a negative number, a non-real power and overflow
    // are planned; the calculator tool fails the run with these messages.
    for (prompt, expression, error) in [
        ("what is 1/0", "1 / 0", "division by zero at position 3"),
        (
            "what is sqrt(-1)",
            "sqrt(-1)",
            "sqrt of a negative number at position 1",
        ),
        (
            "what is (-8)^(1/3)",
            "(-8) ^ (1 / 3)",
            "result is not a real number at position 6",
        ),
        (
            "what is 1e308*10",
            "1e308 * 10",
            "result too large at position 1",
        ),
    ] {
        assert_eq!(
            steps(prompt),
            [("calculator".to_owned(), json!({ "expression": expression }))],
            "{prompt:?}"
        );
        let e = crane_calc::evaluate(expression).unwrap_err();
        assert!(e.is_arithmetic());
        assert_eq!(
            e.describe_with(|p| format!("position {p}")),
            error,
            "{prompt:?}"
        );
    }
}

#[test]
fn list_positions_stay_inside_the_page() {
    let list = |input: Value| ("todo_list".to_owned(), input);
    let delete = |id: &str| ("todo_delete".to_owned(), json!({ "id": id }));
    // Plain listing is unchanged.
    assert_eq!(steps("list my todos"), [list(json!({}))]);
    // From the end: newest first, and the index counts from 0.
    assert_eq!(
        steps("list my todos and delete the last one"),
        [
            list(json!({"order": "newest_first"})),
            delete("${steps.1.todos.0.id}")
        ]
    );
    assert_eq!(
        steps("delete the second-to-last todo"),
        [
            list(json!({"order": "newest_first"})),
            delete("${steps.1.todos.1.id}")
        ]
    );
    // Beyond the default page of 100: a limit that covers the position.
    assert_eq!(
        steps("delete the 150th todo"),
        [
            list(json!({"limit": 150})),
            delete("${steps.1.todos.149.id}")
        ]
    );
    assert_eq!(
        steps("delete the 100th todo"),
        [list(json!({})), delete("${steps.1.todos.99.id}")]
    );
    assert_eq!(
        steps("delete the 101st todo"),
        [
            list(json!({"limit": 101})),
            delete("${steps.1.todos.100.id}")
        ]
    );
    assert_eq!(
        steps("list my open todos, then delete the 120th to last one"),
        [
            list(json!({"done": false, "order": "newest_first", "limit": 120})),
            delete("${steps.1.todos.119.id}")
        ]
    );
    assert_eq!(
        steps("delete the 1000th todo"),
        [
            list(json!({"limit": 1000})),
            delete("${steps.1.todos.999.id}")
        ]
    );
    // Beyond one page of 1000: refused, nothing planned.
    let r = rejected("list my todos and delete the 1001st todo");
    assert_eq!(r.clause.as_deref(), Some("delete the 1001st todo"));
    assert!(
        r.message
            .contains("the 1001st todo is beyond what one list holds (at most 1000 todos"),
        "{}",
        r.message
    );
    // The largest position asked of one list sets its limit.
    let s = steps("show my todos, complete the 200th one and delete the 150th one");
    assert_eq!(s[0], list(json!({"limit": 200})));
    assert_eq!(s[2], delete("${steps.1.todos.149.id}"));
    // Reasoning says how the list is read.
    let s = plan("delete the last todo").unwrap();
    assert_eq!(
        s[0].reasoning,
        "List the todos, newest first, to find the last one."
    );
    let s = plan("show my todos, then delete the 150th").unwrap();
    assert_eq!(s[0].reasoning, "List all todos, up to 150 of them.");
}

// ---- data/adversarial.jsonl ------------------------------------------------------------

/// The runtime refuses prompts longer than this before any planner sees them.
const RUNTIME_PROMPT_LIMIT: usize = 8000;

#[test]
fn the_adversarial_set_plans_as_expected() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/adversarial.jsonl");
    let text = std::fs::read_to_string(&path).expect("data/adversarial.jsonl is readable");
    let mut failures = Vec::new();
    let mut cases = 0;
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        cases += 1;
        let case: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
        let id = case["id"].as_str().unwrap_or("<no id>");
        let prompt = case["prompt"].as_str().expect("a prompt");
        let expect = &case["expect"];
        let planned = plan(prompt);
        let needles: Vec<&str> = expect["error_contains"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if expect["reject"] == json!(true) {
            match planned {
                Ok(s) => failures.push(format!("{id}: planned {} steps", s.len())),
                // Over the runtime's limit the runtime's message is expected; the planner
                // must still refuse on its own.
                Err(_) if prompt.chars().count() > RUNTIME_PROMPT_LIMIT => {}
                Err(r) => {
                    for needle in needles {
                        if !r.message.contains(needle) {
                            failures.push(format!("{id}: {:?} lacks {needle:?}", r.message));
                        }
                    }
                }
            }
            continue;
        }
        let Some(want) = expect["steps"].as_array() else {
            failures.push(format!("{id}: no steps and no reject"));
            continue;
        };
        match planned {
            Ok(s) => {
                let got: Vec<Value> = s
                    .iter()
                    .map(|s| json!({"tool": s.tool, "input": s.input}))
                    .collect();
                let same = got.len() == want.len()
                    && got.iter().zip(want).all(|(g, w)| {
                        g["tool"] == w["tool"]
                            && (w.get("input").is_none() || g["input"] == w["input"])
                    });
                if !same {
                    failures.push(format!("{id}: planned {got:?}, expected {want:?}"));
                }
            }
            Err(r) => failures.push(format!("{id}: rejected: {}", r.message)),
        }
    }
    assert!(cases >= 90, "only {cases} adversarial cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
