//! Phrase-family tests through the public API: each family's wordings, title preservation,
//! references, clause splitting, rejections and the step limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crane_rules::{PLANNER_NAME, PLANNER_VERSION, Rejection, plan};
use serde_json::{Value, json};

/// The planned steps as `[tool, input]` pairs; panics with the rejection if rejected.
fn steps(prompt: &str) -> Vec<(String, Value)> {
    match plan(prompt) {
        Ok(s) => s.into_iter().map(|s| (s.tool, s.input)).collect(),
        Err(r) => panic!("{prompt:?} was rejected: {}", r.message),
    }
}

fn one(prompt: &str) -> (String, Value) {
    let s = steps(prompt);
    assert_eq!(s.len(), 1, "{prompt:?} planned {s:?}");
    s.into_iter().next().unwrap()
}

fn expression(prompt: &str) -> String {
    let (tool, input) = one(prompt);
    assert_eq!(tool, "calculator", "{prompt:?}");
    input["expression"].as_str().unwrap().to_owned()
}

fn added(prompt: &str) -> String {
    let (tool, input) = one(prompt);
    assert_eq!(tool, "todo_add", "{prompt:?}");
    input["title"].as_str().unwrap().to_owned()
}

fn rejected(prompt: &str) -> Rejection {
    match plan(prompt) {
        Ok(s) => panic!("{prompt:?} was planned: {s:?}"),
        Err(r) => r,
    }
}

/// The only step's `field` input if the plan is exactly one `tool` step, else a description
/// of what was planned (never panics, so one table reports every mismatch).
fn single(prompt: &str, tool: &str, field: &str) -> String {
    match plan(prompt) {
        Ok(s) if s.len() == 1 && s[0].tool == tool => s[0].input[field]
            .as_str()
            .unwrap_or("<not a string>")
            .to_owned(),
        Ok(s) => format!(
            "<planned {:?}>",
            s.iter().map(|x| (&x.tool, &x.input)).collect::<Vec<_>>()
        ),
        Err(r) => format!("<rejected: {}>", r.message),
    }
}

fn calc_of(prompt: &str) -> String {
    single(prompt, "calculator", "expression")
}

fn title_of(prompt: &str) -> String {
    single(prompt, "todo_add", "title")
}

fn check_all(cases: &[(&str, &str)], f: fn(&str) -> String) {
    let bad: Vec<String> = cases
        .iter()
        .filter_map(|(prompt, want)| {
            let got = f(prompt);
            (got != *want).then(|| format!("{prompt:?}: got {got:?}, want {want:?}"))
        })
        .collect();
    assert!(bad.is_empty(), "mismatches:\n{}", bad.join("\n"));
}

#[test]
fn planner_identity() {
    assert_eq!(PLANNER_NAME, "rule");
    assert_eq!(PLANNER_VERSION, "1.1.0");
}

#[test]
fn arithmetic_symbols() {
    check_all(
        &[
            ("(41*7)+13", "(41 * 7) + 13"),
            ("2^10", "2 ^ 10"),
            ("2**10", "2 ^ 10"),
            ("sqrt(16) + 1", "sqrt(16) + 1"),
            (
                "abs(-3) * floor(2.5) + ceil(1.2)",
                "abs(-3) * floor(2.5) + ceil(1.2)",
            ),
            ("max(1, 2, 3)", "max(1, 2, 3)"),
            ("3 × 4 ÷ 2", "3 * 4 / 2"),
            ("1.5e3 / .5", "1.5e3 / 0.5"),
            ("10 % 4", "10 % 4"),
            ("-(2+3)", "-(2 + 3)"),
            ("2 * pi", "2 * pi"),
            ("e ^ 2", "e ^ 2"),
            ("√81", "sqrt(81)"),
        ],
        calc_of,
    );
}

#[test]
fn arithmetic_words_and_prefixes() {
    check_all(
        &[
            ("What is 7 times 6?", "7 * 6"),
            ("what's 7 x 6", "7 * 6"),
            ("calculate 7 multiplied by 6", "7 * 6"),
            ("compute 100 divided by 8", "100 / 8"),
            ("evaluate 10 minus 3 plus 2", "10 - 3 + 2"),
            ("how much is 5 squared?", "5 ^ 2"),
            ("solve 2 to the power of 8", "2 ^ 8"),
            ("2 raised to the power of 3", "2 ^ 3"),
            ("what is 3 cubed!", "3 ^ 3"),
            ("what is the square root of 81.", "sqrt(81)"),
            ("what does 2 + 2 equal?", "2 + 2"),
            ("2+2=", "2 + 2"),
            ("can you tell me what 6 times 7 is", "6 * 7"),
            ("please calculate 1 + 1 for me", "1 + 1"),
            ("what is seven times six", "7 * 6"),
            ("what is one hundred and five minus five", "105 - 5"),
            ("what is three point five times two", "3.5 * 2"),
            ("17 modulo 5", "17 % 5"),
            ("the absolute value of -7", "abs(-7)"),
            ("what is 1,000 * 3", "1000 * 3"),
            ("what is 12,345.5 + 0.5", "12345.5 + 0.5"),
        ],
        calc_of,
    );
}

#[test]
fn arithmetic_verbs() {
    check_all(
        &[
            ("multiply 5 by 3", "5 * 3"),
            ("multiply 2, 3 and 4", "2 * 3 * 4"),
            ("divide 100 by 8", "100 / 8"),
            ("add 2 and 3", "2 + 3"),
            ("add 2, 3 and 4 together", "2 + 3 + 4"),
            ("add 2 to 3", "3 + 2"),
            ("subtract 3 from 10", "10 - 3"),
            ("take 3 away from 10", "10 - 3"),
            ("square 7", "7 ^ 2"),
            ("raise 2 to 10", "2 ^ 10"),
            ("halve 9", "9 / 2"),
            ("increase 200 by 10%", "200 * (1 + 10 / 100)"),
            ("decrease 50 by 20 percent", "50 * (1 - 20 / 100)"),
            ("round 2.567 to 2 decimal places", "round(2.567, 2)"),
            ("round 2.5", "round(2.5)"),
        ],
        calc_of,
    );
}

#[test]
fn arithmetic_lists_and_percentages() {
    check_all(
        &[
            ("sum of 1, 2 and 3", "1 + 2 + 3"),
            ("what is the sum of 1, 2, and 3?", "1 + 2 + 3"),
            ("total of 4 and 5", "4 + 5"),
            ("average of 4, 8 and 15", "(4 + 8 + 15) / 3"),
            ("the mean of 1, 2, 3, 4", "(1 + 2 + 3 + 4) / 4"),
            ("min of 4, 8 and 15", "min(4, 8, 15)"),
            ("minimum of 4 and 8", "min(4, 8)"),
            ("smallest of 3, 1, 2", "min(3, 1, 2)"),
            ("max of 4, 8 and 15", "max(4, 8, 15)"),
            ("the largest of 4 and 8", "max(4, 8)"),
            ("product of 2, 3 and 4", "2 * 3 * 4"),
            ("the difference between 10 and 3", "10 - 3"),
            (
                "X% of Y".replace("X", "15").replace("Y", "80").leak(),
                "(15 / 100) * 80",
            ),
            ("15 percent of 80", "(15 / 100) * 80"),
            ("what is 12.5% of 8", "(12.5 / 100) * 8"),
            ("what is 50%", "50 / 100"),
            ("what percent of 80 is 20", "(20 / 80) * 100"),
            ("20 is what percent of 80", "(20 / 80) * 100"),
            // Thousands separators: glued groups of three, except in lists without other
            // separators.
            ("sum of 1,2,3", "1 + 2 + 3"),
            ("sum of 100,200,300", "100 + 200 + 300"),
            ("sum of 1,000 and 2,000", "1000 + 2000"),
            ("sum of 1,000, 2,000 and 3", "1000 + 2000 + 3"),
            ("max(1,2)", "max(1, 2)"),
        ],
        calc_of,
    );
}

#[test]
fn arithmetic_precedence_is_preserved() {
    check_all(
        &[
            ("2 + 3 * 4", "2 + 3 * 4"),
            ("(2 + 3) * 4", "(2 + 3) * 4"),
            ("2 plus 3 times 4", "2 + 3 * 4"),
            ("10 - 2 - 3", "10 - 2 - 3"),
            ("2^3^2", "2 ^ 3 ^ 2"),
            ("-2^2", "-(2 ^ 2)"),
            ("2^-1", "2 ^ (-1)"),
            ("3 - -2", "3 - (-2)"),
            ("minus 5 squared", "(-5) ^ 2"),
            ("average of 1 + 1 and 4", "(1 + 1 + 4) / 2"),
            ("half of 3 + 1", "3 / 2 + 1"),
        ],
        calc_of,
    );
}

#[test]
fn arithmetic_never_passes_raw_words() {
    // Clearly calculations: the calculator's own error, at a column of the prompt.
    for (prompt, error) in [
        (
            "what is 5 by 3",
            "unexpected 'by' at column 11 of the prompt.",
        ),
        (
            "what is 2 + 2 apples",
            "unexpected 'apples' at column 15 of the prompt.",
        ),
        (
            "what is 200 + 10%",
            "unexpected end of expression at column 18 of the prompt (% is the remainder operator; for a percentage say e.g. \"10% of 200\").",
        ),
        ("what is 5!", "unexpected '!' at column 10 of the prompt."),
        ("what is 2(3)", "unexpected '(' at column 10 of the prompt."),
        (
            "what is ((1)",
            "unclosed parenthesis opened at column 9 of the prompt.",
        ),
    ] {
        let r = rejected(prompt);
        assert_eq!(
            r.message,
            format!("I could not calculate \"{prompt}\": {error}"),
            "{prompt:?}"
        );
        assert_eq!(r.clause.as_deref(), Some(prompt));
    }
    // Not clearly calculations (or phrases the calculator has no words for): not understood.
    for prompt in [
        "solve x + 2 = 5",
        "sum of 5",
        "add 2",
        "multiply 5",
        "divide 5 by",
    ] {
        let r = rejected(prompt);
        assert!(
            r.message.contains("could not understand"),
            "{prompt:?}: {}",
            r.message
        );
    }
}

#[test]
fn todo_add_phrasings() {
    check_all(
        &[
            ("add a todo to buy milk", "buy milk"),
            ("add todo 2 apples", "2 apples"),
            ("add a task: call mom", "call mom"),
            ("add a new task - call mom", "call mom"),
            ("remind me to call mom", "call mom"),
            ("don't let me forget to call mom", "call mom"),
            ("add buy eggs to my list", "buy eggs"),
            ("add buy eggs to my todo list", "buy eggs"),
            ("add buy eggs to my to-do list", "buy eggs"),
            ("add buy eggs to my todos", "buy eggs"),
            ("add buy eggs to the list", "buy eggs"),
            ("put buy eggs on my list", "buy eggs"),
            ("add to my list: buy eggs", "buy eggs"),
            ("create a todo called buy eggs", "buy eggs"),
            ("create todo buy eggs", "buy eggs"),
            ("make a todo to buy eggs", "buy eggs"),
            ("new todo: buy eggs", "buy eggs"),
            ("new task buy eggs", "buy eggs"),
            ("todo: buy eggs", "buy eggs"),
            ("set a reminder to buy eggs", "buy eggs"),
            ("add a reminder to buy eggs", "buy eggs"),
            ("add another todo: buy eggs", "buy eggs"),
            ("please add a todo to buy eggs", "buy eggs"),
            ("could you add a todo to buy eggs please?", "buy eggs"),
            ("add a todo to buy eggs, thanks!", "buy eggs"),
            ("add eggs", "eggs"),
            ("add task force meeting to my list", "task force meeting"),
        ],
        title_of,
    );
}

#[test]
fn titles_are_kept_exactly() {
    check_all(
        &[
            ("add a todo to Buy MILK", "Buy MILK"),
            ("add a todo \"Buy Milk\"", "Buy Milk"),
            ("add a todo 'Buy Milk'", "Buy Milk"),
            ("add a todo “Buy Milk”", "Buy Milk"),
            ("add a todo «Buy Milk»", "Buy Milk"),
            ("add a todo \"Buy Milk!\"", "Buy Milk!"),
            ("add a todo \"then list my todos\"", "then list my todos"),
            ("add a todo to buy bread and butter", "buy bread and butter"),
            (
                "add a todo to buy eggs, milk, and bread",
                "buy eggs, milk, and bread",
            ),
            ("add a todo to call Dr. Müller", "call Dr. Müller"),
            ("add a todo to visit 東京 🗼", "visit 東京 🗼"),
            (
                "add a todo to read \"War and Peace\"",
                "read \"War and Peace\"",
            ),
            ("add a todo to fix mom's bike", "fix mom's bike"),
            ("add a todo to buy milk.", "buy milk"),
            ("add a todo to buy milk?!", "buy milk"),
            ("add a todo to buy milk;", "buy milk"),
            ("add a todo:   buy   milk  ", "buy   milk"),
            ("add a todo to pay 50% of the bill", "pay 50% of the bill"),
            ("add a todo to think then act", "think then act"),
            ("add todo 2 apples", "2 apples"),
            ("add a todo to email a@b.com", "email a@b.com"),
            ("add a todo to say thank you", "say thank you"),
            ("add a todo to pay ${rent}", "pay $${rent}"),
            ("add a todo to pay $${rent}", "pay $$${rent}"),
            ("add a todo to cost $5 {maybe}", "cost $5 {maybe}"),
        ],
        title_of,
    );
}

#[test]
fn todo_list_phrasings() {
    let cases: &[(&str, Value)] = &[
        ("show me all my tasks", json!({})),
        ("list my todos", json!({})),
        ("list todos", json!({})),
        ("what's on my list", json!({})),
        ("what is on my todo list?", json!({})),
        ("what are my tasks", json!({})),
        ("show my todo list", json!({})),
        ("my todos", json!({})),
        ("how many todos do I have?", json!({})),
        ("show my completed todos", json!({"done": true})),
        ("list done tasks", json!({"done": true})),
        ("which todos have I finished", json!({"done": true})),
        ("what have I completed?", json!({"done": true})),
        ("show open todos", json!({"done": false})),
        ("show pending todos", json!({"done": false})),
        ("list my incomplete tasks", json!({"done": false})),
        ("show todos that are not done yet", json!({"done": false})),
        ("what's left to do", json!({"done": false})),
        ("what do I still have to do?", json!({"done": false})),
    ];
    for (prompt, want) in cases {
        assert_eq!(
            one(prompt),
            ("todo_list".to_owned(), want.clone()),
            "{prompt:?}"
        );
    }
}

#[test]
fn todo_complete_phrasings() {
    let prompts = [
        "mark buy milk as done",
        "mark buy milk done",
        "mark buy milk as complete",
        "mark buy milk as completed",
        "mark buy milk as finished",
        "mark the todo buy milk as done",
        "complete the todo buy milk",
        "complete buy milk",
        "finish buy milk",
        "I finished buy milk",
        "I've finished buy milk",
        "I have completed buy milk",
        "I'm done with buy milk",
        "check off buy milk",
        "check buy milk off",
        "tick off buy milk",
        "cross buy milk off my list",
        "buy milk is done",
        "mark \"buy milk\" as done.",
        "set buy milk as done",
    ];
    for prompt in prompts {
        assert_eq!(
            one(prompt),
            ("todo_complete".to_owned(), json!({"title": "buy milk"})),
            "{prompt:?}"
        );
    }
    assert_eq!(
        one("mark the todo with id 0192-ab as done").1,
        json!({"id": "0192-ab"})
    );
}

#[test]
fn todo_delete_phrasings() {
    let prompts = [
        "delete the todo buy milk",
        "delete todo buy milk",
        "delete buy milk",
        "remove buy milk",
        "remove buy milk from my list",
        "remove buy milk from my todo list",
        "delete the buy milk todo",
        "delete the task called buy milk",
        "get rid of buy milk",
        "take buy milk off my list",
        "erase 'buy milk'",
    ];
    for prompt in prompts {
        assert_eq!(
            one(prompt),
            ("todo_delete".to_owned(), json!({"title": "buy milk"})),
            "{prompt:?}"
        );
    }
}

#[test]
fn references_to_earlier_steps() {
    let s = steps("add a todo to buy milk and then mark it done");
    assert_eq!(
        s[1],
        ("todo_complete".into(), json!({"id": "${steps.1.todo.id}"}))
    );
    let s = steps("add a todo to buy milk, then delete it");
    assert_eq!(
        s[1],
        ("todo_delete".into(), json!({"id": "${steps.1.todo.id}"}))
    );
    let s = steps("add a todo to buy milk and complete that one");
    assert_eq!(s[1].1, json!({"id": "${steps.1.todo.id}"}));
    let s = steps("add a todo to x, mark it done, then delete it");
    assert_eq!(s[2].1, json!({"id": "${steps.2.todo.id}"}));

    let s = steps("list my todos and mark the first one as complete");
    assert_eq!(s[0], ("todo_list".into(), json!({})));
    assert_eq!(
        s[1],
        (
            "todo_complete".into(),
            json!({"id": "${steps.1.todos.0.id}"})
        )
    );
    // Counted from the end: the list is newest first, "the last" is its first item.
    let s = steps("list my todos and delete the last one");
    assert_eq!(
        s,
        [
            ("todo_list".into(), json!({"order": "newest_first"})),
            ("todo_delete".into(), json!({"id": "${steps.1.todos.0.id}"}))
        ]
    );
    // From both ends: a second list, newest first, for the second-to-last.
    let s = steps("show my todos, then complete the 2nd one and delete the second to last");
    assert_eq!(
        s,
        [
            ("todo_list".into(), json!({})),
            (
                "todo_complete".into(),
                json!({"id": "${steps.1.todos.1.id}"})
            ),
            ("todo_list".into(), json!({"order": "newest_first"})),
            ("todo_delete".into(), json!({"id": "${steps.3.todos.1.id}"}))
        ]
    );
    let s = steps("complete todo number 3");
    assert_eq!(s[0], ("todo_list".into(), json!({})));
    assert_eq!(s[1].1, json!({"id": "${steps.1.todos.2.id}"}));

    // No list earlier: one is inserted, with the filter the phrase asks for.
    let s = steps("delete the last one");
    assert_eq!(s[0], ("todo_list".into(), json!({"order": "newest_first"})));
    assert_eq!(
        s[1],
        ("todo_delete".into(), json!({"id": "${steps.1.todos.0.id}"}))
    );
    let s = steps("complete the first open todo");
    assert_eq!(s[0], ("todo_list".into(), json!({"done": false})));
    let s = steps("complete the third-to-last open todo");
    assert_eq!(
        s,
        [
            (
                "todo_list".into(),
                json!({"done": false, "order": "newest_first"})
            ),
            (
                "todo_complete".into(),
                json!({"id": "${steps.1.todos.2.id}"})
            )
        ]
    );
    let s = steps("show my open todos and complete the first one");
    assert_eq!(s.len(), 2);
    let s = steps("show all my todos and delete the first completed one");
    assert_eq!(s[1], ("todo_list".into(), json!({"done": true})));
    assert_eq!(s[2].1, json!({"id": "${steps.2.todos.0.id}"}));

    // The result of an earlier calculation.
    let s = steps("what is 7 times 6, then add 8 to it");
    assert_eq!(s[1].1, json!({"expression": "(${steps.1.value}) + 8"}));
    let s = steps("what is 2 + 2 and multiply the result by 10");
    assert_eq!(s[1].1, json!({"expression": "(${steps.1.value}) * 10"}));
}

#[test]
fn splitting_only_where_a_command_starts() {
    let tools = |p: &str| -> Vec<String> { steps(p).into_iter().map(|s| s.0).collect() };
    assert_eq!(
        steps("Add a todo to buy milk, then show me all my tasks"),
        vec![
            ("todo_add".into(), json!({"title": "buy milk"})),
            ("todo_list".into(), json!({})),
        ]
    );
    assert_eq!(
        tools("add a todo to buy milk and list my todos"),
        ["todo_add", "todo_list"]
    );
    assert_eq!(
        tools("add a todo to buy milk after that list my todos"),
        ["todo_add", "todo_list"]
    );
    assert_eq!(
        tools("add a todo to buy milk; list my todos"),
        ["todo_add", "todo_list"]
    );
    assert_eq!(
        tools("add a todo to buy milk.\nlist my todos"),
        ["todo_add", "todo_list"]
    );
    assert_eq!(
        tools("add a todo to a, add a todo to b, and add a todo to c"),
        ["todo_add", "todo_add", "todo_add"]
    );
    assert_eq!(tools("add milk and add eggs"), ["todo_add", "todo_add"]);
    assert_eq!(
        tools("what is 2+2 and what is 3*3"),
        ["calculator", "calculator"]
    );
    assert_eq!(
        tools("what is 2 plus 2 and 3 times 3"),
        ["calculator", "calculator"]
    );
    assert_eq!(
        tools("complete buy milk and delete walk the dog"),
        ["todo_complete", "todo_delete"]
    );
    assert_eq!(
        tools("list my todos and delete buy milk"),
        ["todo_list", "todo_delete"]
    );
    // Not split: titles and number lists.
    assert_eq!(
        added("add a todo to buy bread and butter"),
        "buy bread and butter"
    );
    assert_eq!(added("remind me to call mom and dad"), "call mom and dad");
    assert_eq!(
        added("add a todo to review and delete old emails"),
        "review and delete old emails"
    );
    assert_eq!(expression("what is the sum of 1, 2 and 3"), "1 + 2 + 3");
    assert_eq!(expression("add 2 and 3"), "2 + 3");
}

#[test]
fn rejections_name_the_clause() {
    let r = rejected("book me a flight to Paris");
    assert_eq!(r.clause.as_deref(), Some("book me a flight to Paris"));
    assert!(r.message.contains("\"book me a flight to Paris\""));
    assert!(r.message.contains("crane can do arithmetic"));
    let r = rejected("list my todos and book a flight");
    assert_eq!(r.clause.as_deref(), Some("book a flight"));
    assert!(
        r.message
            .starts_with("I could not understand \"book a flight\".")
    );
    let r = rejected("what is 2 + 2, then order a pizza");
    assert_eq!(r.clause.as_deref(), Some("order a pizza"));
    let r = rejected("sing a song and then list my todos");
    assert_eq!(r.clause.as_deref(), Some("sing a song"));
    assert_eq!(rejected("?").clause.as_deref(), Some("?"));
    assert_eq!(
        rejected("and and and").clause.as_deref(),
        Some("and and and")
    );
    assert!(rejected("add a todo").message.contains("needs a title"));
    assert!(
        rejected("mark it as done")
            .message
            .contains("\"mark it as done\"")
    );
    assert!(
        rejected("multiply it by 2")
            .message
            .contains("no earlier calculation")
    );
    assert!(
        rejected("delete all my todos")
            .message
            .contains("one todo per step")
    );
    for empty in ["", "   ", "\n\t "] {
        let r = rejected(empty);
        assert_eq!(r.message, "the prompt is empty");
        assert_eq!(r.clause, None);
    }
}

#[test]
fn step_limit() {
    let fifty: Vec<String> = (1..=50).map(|i| format!("add todo t{i}")).collect();
    assert_eq!(steps(&fifty.join("; ")).len(), 50);
    let fifty_one: Vec<String> = (1..=51).map(|i| format!("add todo t{i}")).collect();
    let r = rejected(&fifty_one.join("; "));
    assert_eq!(r.message, "the prompt asks for 51 steps; the limit is 50");
    // Inserted list steps count too.
    let mut many: Vec<String> = (1..=49).map(|i| format!("what is {i} + 1")).collect();
    many.push("delete the last one".into());
    let r = rejected(&many.join(". "));
    assert_eq!(r.message, "the prompt asks for 51 steps; the limit is 50");
}

#[test]
fn reasoning_is_a_sentence() {
    for s in
        plan("add a todo to buy milk, list my todos, complete the first one, what is 2+2").unwrap()
    {
        assert!(s.reasoning.ends_with('.'), "{:?}", s.reasoning);
        assert!(s.reasoning.len() > 10);
    }
    let s = plan("add a todo to buy milk").unwrap();
    assert_eq!(s[0].reasoning, "Add the todo \"buy milk\".");
}

#[test]
fn several_todos_in_one_phrase() {
    let titles = |p: &str| -> Vec<String> {
        steps(p)
            .into_iter()
            .map(|(tool, input)| {
                assert_eq!(tool, "todo_add", "{p:?}");
                input["title"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    assert_eq!(
        titles("add \"call mom\" and \"buy milk\" to my list"),
        ["call mom", "buy milk"]
    );
    assert_eq!(titles("add a todo \"a\", \"b\" and \"c\""), ["a", "b", "c"]);
    assert_eq!(
        titles("add todos: milk, eggs and bread"),
        ["milk", "eggs", "bread"]
    );
    assert_eq!(
        titles("add two tasks: call mom and pay rent"),
        ["call mom", "pay rent"]
    );
    assert_eq!(
        titles("add a todo to buy milk and another one to buy eggs"),
        ["buy milk", "buy eggs"]
    );
    assert_eq!(
        titles("add a todo to buy milk, then add another to buy eggs"),
        ["buy milk", "buy eggs"]
    );
    // Without quotes or a plural keyword, one todo.
    assert_eq!(
        titles("add milk, eggs and bread to my list"),
        ["milk, eggs and bread"]
    );

    let s = steps("complete \"buy milk\" and \"walk the dog\"");
    assert_eq!(s[0].1, json!({"title": "buy milk"}));
    assert_eq!(s[1].1, json!({"title": "walk the dog"}));
    // The last one comes from a second list, newest first.
    let s = steps("mark the first, second and last ones as done");
    assert_eq!(
        s,
        [
            ("todo_list".into(), json!({})),
            (
                "todo_complete".into(),
                json!({"id": "${steps.1.todos.0.id}"})
            ),
            (
                "todo_complete".into(),
                json!({"id": "${steps.1.todos.1.id}"})
            ),
            ("todo_list".into(), json!({"order": "newest_first"})),
            (
                "todo_complete".into(),
                json!({"id": "${steps.4.todos.0.id}"})
            ),
        ]
    );
}

#[test]
fn spoken_grouping_and_leftovers() {
    assert_eq!(calc_of("What is 3 plus 4, times 2?"), "(3 + 4) * 2");
    assert_eq!(calc_of("10 minus 4, divided by 2"), "(10 - 4) / 2");
    // A number left over after a complete calculation is not silently dropped or run alone.
    assert_eq!(rejected("what is 2 + 2 and 3").clause.as_deref(), Some("3"));
    assert_eq!(one("show me what I've completed").1, json!({"done": true}));
    assert_eq!(
        steps("hey crane, what's 2+2?"),
        vec![("calculator".to_owned(), json!({"expression": "2 + 2"}))]
    );
}
