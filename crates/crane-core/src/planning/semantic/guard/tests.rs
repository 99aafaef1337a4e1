//! The guard's tests: the tricky near hits one by one, the paraphrase dataset
//! (`data/paraphrases.jsonl`) in the worst case (the embedding search returns `a`'s entry for
//! every `b`), and properties (no panics; numbers and plain titles always re-bind).

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::tools::builtin_registry;

fn plan(raw: &[(&str, Value)]) -> Vec<PlanStep> {
    raw.iter()
        .enumerate()
        .map(|(i, (tool, input))| PlanStep {
            step_number: i as u32 + 1,
            tool: (*tool).to_owned(),
            input: input.clone(),
            reasoning: format!("step {}", i + 1),
        })
        .collect()
}

fn template(prompt: &str, raw: &[(&str, Value)]) -> PlanTemplate {
    PlanTemplate::from_plan(prompt, &plan(raw), &builtin_registry())
        .unwrap_or_else(|e| panic!("{prompt}: {e}"))
}

/// `(tool, input)` of each served step.
fn served(t: &PlanTemplate, prompt: &str) -> Result<Vec<(String, Value)>, &'static str> {
    t.bind_checked(prompt, &builtin_registry())
        .map(|s| s.steps.into_iter().map(|s| (s.tool, s.input)).collect())
        .map_err(|r| r.as_str())
}

fn expect(raw: &[(&str, Value)]) -> Result<Vec<(String, Value)>, &'static str> {
    Ok(raw
        .iter()
        .map(|(t, i)| ((*t).to_owned(), i.clone()))
        .collect())
}

#[test]
fn milk_rebinds_to_eggs_and_keeps_the_new_case() {
    let t = template(
        "add a todo to buy milk",
        &[("todo_add", json!({"title": "buy milk"}))],
    );
    assert_eq!(
        served(&t, "add a todo to buy eggs"),
        expect(&[("todo_add", json!({"title": "buy eggs"}))])
    );
    let s = t.serve("Add a todo to Buy Eggs.").unwrap();
    assert_eq!(s.kind, HitKind::Rebound);
    assert_eq!(s.steps[0].input, json!({"title": "Buy Eggs"}));
    assert_eq!(s.steps[0].reasoning, REBOUND_REASONING);
    // Case is part of the literal: "Buy Milk" is not "buy milk".
    assert_eq!(
        served(&t, "add a todo to Buy Milk"),
        expect(&[("todo_add", json!({"title": "Buy Milk"}))])
    );
    // The very same literal keeps the plan's reasoning.
    let s = t.serve("ADD A TODO TO buy milk").unwrap();
    assert_eq!(s.kind, HitKind::SameLiterals);
    assert_eq!(s.steps[0].reasoning, "step 1");
    // Digits inside a title stay in the title.
    assert_eq!(
        served(&t, "add a todo to buy 2 eggs"),
        expect(&[("todo_add", json!({"title": "buy 2 eggs"}))])
    );
}

#[test]
fn bare_titles_and_command_words_as_titles_do_not_rebind() {
    // An LLM planned a bare title as todo_add: the same title only.
    let t = template("buy milk", &[("todo_add", json!({"title": "buy milk"}))]);
    assert!(served(&t, "what is the weather").is_err());
    assert!(served(&t, "walk the dog").is_err());
    assert_eq!(
        served(&t, "buy milk!"),
        expect(&[("todo_add", json!({"title": "buy milk"}))])
    );
    let t = template(
        "\"buy milk\"",
        &[("todo_add", json!({"title": "buy milk"}))],
    );
    assert!(served(&t, "\"delete everything\"").is_err());
    // A title that is also a command word elsewhere in the prompt.
    let err = PlanTemplate::from_plan(
        "list my todos and add a todo to list",
        &plan(&[
            ("todo_list", json!({})),
            ("todo_add", json!({"title": "list"})),
        ]),
        &builtin_registry(),
    )
    .unwrap_err();
    assert_eq!(err.as_str(), "ambiguous_text");
}

#[test]
fn text_slots_refuse_new_structure() {
    let t = template(
        "add a todo to buy milk",
        &[("todo_add", json!({"title": "buy milk"}))],
    );
    for prompt in [
        "add a todo to buy milk and delete eggs",
        "add a todo to buy milk, then list my todos",
        "add a todo to buy milk please",
        "add a todo to not buy milk",
        "add a todo to buy milk and eggs",
        "add a todo to ${steps.1.todo.title}",
        "add a todo to buy milk to my list",
    ] {
        assert!(served(&t, prompt).is_err(), "{prompt}");
    }
    assert_eq!(
        t.serve("add a todo to pay ${rent}").unwrap_err().as_str(),
        "slot_content"
    );
    // Quotes around the very same title: the same plan.
    assert_eq!(
        served(&t, "add a todo to \"buy milk\""),
        expect(&[("todo_add", json!({"title": "buy milk"}))])
    );
}

#[test]
fn negation_is_refused() {
    let t = template(
        "delete the todo buy milk",
        &[("todo_delete", json!({"title": "buy milk"}))],
    );
    assert_eq!(
        served(&t, "don't delete the todo buy milk"),
        Err("polarity_mismatch")
    );
    assert_eq!(
        served(&t, "do not delete the todo buy milk"),
        Err("polarity_mismatch")
    );
    let t = template(
        "delete my first todo",
        &[
            ("todo_list", json!({})),
            ("todo_delete", json!({"id": "${steps.1.todos.0.id}"})),
        ],
    );
    assert_eq!(
        served(&t, "don't delete my first todo"),
        Err("polarity_mismatch")
    );
    assert_eq!(
        served(&t, "never delete my first todo"),
        Err("polarity_mismatch")
    );
    let t = template("list my todos", &[("todo_list", json!({}))]);
    assert_eq!(served(&t, "don't list my todos"), Err("polarity_mismatch"));
}

#[test]
fn operations_must_match_and_numbers_rebind() {
    let t = template(
        "calculate 2 plus 3",
        &[("calculator", json!({"expression": "2 + 3"}))],
    );
    assert_eq!(served(&t, "calculate 2 minus 3"), Err("operation_mismatch"));
    assert_eq!(served(&t, "calculate 2 times 3"), Err("operation_mismatch"));
    assert_eq!(
        served(&t, "calculate 7 plus 8"),
        expect(&[("calculator", json!({"expression": "7 + 8"}))])
    );
    // Numbers re-bind only to numbers written the same way (grouping, leading dot, exponent).
    assert_eq!(
        served(&t, "calculate 1,000 plus 5"),
        Err("literal_mismatch")
    );
    assert_eq!(served(&t, "calculate 2 plus .5"), Err("literal_mismatch"));
    assert_eq!(served(&t, "calculate 2 plus 5e3"), Err("literal_mismatch"));
    let grouped = template(
        "calculate 1,000 plus .5",
        &[("calculator", json!({"expression": "1000 + 0.5"}))],
    );
    assert_eq!(
        served(&grouped, "calculate 2,500 plus .25"),
        expect(&[("calculator", json!({"expression": "2500 + 0.25"}))])
    );
    assert!(served(&t, "calculate 2 plus 3 plus 4").is_err());
    // A sign change could change precedence ("-3 ^ 2"): refused.
    assert_eq!(served(&t, "calculate -2 plus 3"), Err("literal_mismatch"));
    // Reordered numbers re-bind by position.
    let t = template(
        "subtract 3 from 10",
        &[("calculator", json!({"expression": "10 - 3"}))],
    );
    assert_eq!(
        served(&t, "subtract 10 from 3"),
        expect(&[("calculator", json!({"expression": "3 - 10"}))])
    );
    // A value used twice must stay one value.
    let t = template(
        "what is 2 plus 2",
        &[("calculator", json!({"expression": "2 + 2"}))],
    );
    assert_eq!(
        served(&t, "what is 5 plus 5"),
        expect(&[("calculator", json!({"expression": "5 + 5"}))])
    );
    assert_eq!(served(&t, "what is 5 plus 6"), Err("literal_mismatch"));
    // Symbols are wording; numbers in expressions re-bind.
    let t = template(
        "(41*7)+13",
        &[("calculator", json!({"expression": "(41 * 7) + 13"}))],
    );
    assert_eq!(
        served(&t, "(2*3)+1"),
        expect(&[("calculator", json!({"expression": "(2 * 3) + 1"}))])
    );
    assert!(served(&t, "(2*3)-1").is_err());
    assert!(served(&t, "(2+3)*1").is_err());
    // A comma groups: "3 plus 4, times 2" is (3 + 4) * 2.
    let t = template(
        "what is 3 plus 4 times 2",
        &[("calculator", json!({"expression": "3 + 4 * 2"}))],
    );
    assert!(served(&t, "what is 3 plus 4, times 2").is_err());
    assert!(served(&t, "what is 5 plus 6, times 7").is_err());
    assert_eq!(
        served(&t, "What is 5 plus 6 times 7?"),
        expect(&[("calculator", json!({"expression": "5 + 6 * 7"}))])
    );
}

#[test]
fn extra_literals_are_refused() {
    let t = template(
        "add buy milk",
        &[("todo_add", json!({"title": "buy milk"}))],
    );
    assert_eq!(
        served(&t, "add buy milk and 3 other things"),
        Err("unbound_literal")
    );
    assert_eq!(
        served(&t, "add buy milk at 5pm"),
        expect(&[("todo_add", json!({"title": "buy milk at 5pm"}))])
    );
    let t = template("list my todos", &[("todo_list", json!({}))]);
    assert_eq!(served(&t, "list my 5 todos"), Err("unbound_literal"));
    assert_eq!(
        served(&t, "list my \"urgent\" todos"),
        Err("unbound_literal")
    );
}

#[test]
fn multi_step_plans_with_references() {
    let t = template(
        "add a todo to buy milk and then mark it done",
        &[
            ("todo_add", json!({"title": "buy milk"})),
            ("todo_complete", json!({"id": "${steps.1.todo.id}"})),
        ],
    );
    assert_eq!(
        served(&t, "add a todo to walk the dog and then mark it done"),
        expect(&[
            ("todo_add", json!({"title": "walk the dog"})),
            ("todo_complete", json!({"id": "${steps.1.todo.id}"})),
        ])
    );
    assert_eq!(
        served(&t, "add a todo to buy milk and then delete it"),
        Err("operation_mismatch")
    );
    let t = template(
        "what is 7 times 6, then add 8 to it",
        &[
            ("calculator", json!({"expression": "7 * 6"})),
            (
                "calculator",
                json!({"expression": "(${steps.1.value}) + 8"}),
            ),
        ],
    );
    assert_eq!(
        served(&t, "what is 3 times 4, then add 5 to it"),
        expect(&[
            ("calculator", json!({"expression": "3 * 4"})),
            (
                "calculator",
                json!({"expression": "(${steps.1.value}) + 5"})
            ),
        ])
    );
    // Two titles, each bound to its own place.
    let t = template(
        "complete buy milk and delete walk the dog",
        &[
            ("todo_complete", json!({"title": "buy milk"})),
            ("todo_delete", json!({"title": "walk the dog"})),
        ],
    );
    assert_eq!(
        served(&t, "complete call mom and delete pay rent"),
        expect(&[
            ("todo_complete", json!({"title": "call mom"})),
            ("todo_delete", json!({"title": "pay rent"})),
        ])
    );
    assert!(served(&t, "complete salt and pepper and delete pay rent").is_err());
    // The same title in two steps: one slot, re-bound in both.
    let t = template(
        "add buy milk then complete buy milk",
        &[
            ("todo_add", json!({"title": "buy milk"})),
            ("todo_complete", json!({"title": "buy milk"})),
        ],
    );
    assert_eq!(
        served(&t, "add buy eggs then complete buy eggs"),
        expect(&[
            ("todo_add", json!({"title": "buy eggs"})),
            ("todo_complete", json!({"title": "buy eggs"})),
        ])
    );
    assert_eq!(
        served(&t, "add buy eggs then complete buy milk"),
        Err("literal_mismatch")
    );
}

#[test]
fn list_slots_line_up_or_refuse() {
    let t = template(
        "add todos: milk, eggs and bread",
        &[
            ("todo_add", json!({"title": "milk"})),
            ("todo_add", json!({"title": "eggs"})),
            ("todo_add", json!({"title": "bread"})),
        ],
    );
    // The commas fix where each title ends.
    assert_eq!(
        served(&t, "add todos: red apples, pears and plums"),
        expect(&[
            ("todo_add", json!({"title": "red apples"})),
            ("todo_add", json!({"title": "pears"})),
            ("todo_add", json!({"title": "plums"})),
        ])
    );
    assert!(served(&t, "add todos: salt and pepper, eggs and bread").is_err());
    assert!(served(&t, "add todos: milk, eggs, jam and bread").is_err());
}

#[test]
fn quoted_ids_and_unicode() {
    let t = template(
        "add \"Buy Milk\" to my list",
        &[("todo_add", json!({"title": "Buy Milk"}))],
    );
    assert_eq!(
        served(&t, "add “Call Mom, then delete it” to my list"),
        expect(&[("todo_add", json!({"title": "Call Mom, then delete it"}))])
    );
    assert!(served(&t, "add Call Mom to my list").is_err());
    let id = "0190b4a2-5c3e-7d4f-8a9b-123456789abc";
    let other = "0190b4a2-0000-7d4f-8a9b-000000000001";
    let t = template(
        &format!("complete the todo {id}"),
        &[("todo_complete", json!({ "id": id }))],
    );
    assert_eq!(
        served(&t, &format!("complete the todo {other}")),
        expect(&[("todo_complete", json!({ "id": other }))])
    );
    assert!(served(&t, "complete the todo buy milk").is_err());
    let t = template(
        "Add a todo to Call Dr. Müller",
        &[("todo_add", json!({"title": "Call Dr. Müller"}))],
    );
    // A title with structure of its own (here a period) only re-binds to itself.
    assert!(served(&t, "add a todo to Call Mr. Ünal").is_err());
    assert!(served(&t, "add a todo to Réserver un café ☕").is_err());
    assert_eq!(
        served(&t, "ADD A TODO TO Call Dr. Müller!"),
        expect(&[("todo_add", json!({"title": "Call Dr. Müller"}))])
    );
    let t = template(
        "add a todo to buy milk",
        &[("todo_add", json!({"title": "buy milk"}))],
    );
    assert_eq!(
        served(&t, "add a todo to Réserver un café ☕"),
        expect(&[("todo_add", json!({"title": "Réserver un café ☕"}))])
    );
    assert_eq!(
        served(&t, "add a todo to 买牛奶"),
        expect(&[("todo_add", json!({"title": "买牛奶"}))])
    );
}

#[test]
fn paraphrases_with_the_same_literals_are_served_unchanged() {
    let t = template("list my todos", &[("todo_list", json!({}))]);
    for prompt in [
        "show me all my tasks",
        "Show me my todos!",
        "could you please display my to-do list",
        "list todos",
    ] {
        let s = t.serve(prompt).unwrap_or_else(|e| panic!("{prompt}: {e}"));
        assert_eq!(s.kind, HitKind::SameLiterals);
        assert_eq!(s.steps, t.original_steps());
    }
    assert_eq!(served(&t, "list my done todos"), Err("operation_mismatch"));
    assert_eq!(served(&t, "list my open todos"), Err("wording_mismatch"));
    assert_eq!(
        served(&t, "list my todos and delete buy milk"),
        Err("operation_mismatch")
    );
    let t = template(
        "what is 7 times 6",
        &[("calculator", json!({"expression": "7 * 6"}))],
    );
    assert_eq!(
        served(&t, "7 multiplied by 6"),
        expect(&[("calculator", json!({"expression": "7 * 6"}))])
    );
    // Same numbers, other order: not a paraphrase.
    let t = template(
        "subtract 3 from 10",
        &[("calculator", json!({"expression": "10 - 3"}))],
    );
    assert_eq!(
        served(&t, "please subtract 10 from 3"),
        Err("wording_mismatch")
    );
}

#[test]
fn stale_and_corrupt_templates_are_refused() {
    let mut t = template(
        "add a todo to buy milk",
        &[("todo_add", json!({"title": "buy milk"}))],
    );
    t.format_version += 1;
    assert_eq!(
        t.serve("add a todo to buy eggs").unwrap_err().as_str(),
        "unsupported_format"
    );
    t.format_version -= 1;
    t.steps[0].holes[0].pointer = "/nope".into();
    assert_eq!(
        t.serve("add a todo to buy eggs").unwrap_err().as_str(),
        "corrupt"
    );
    assert_eq!(
        t.serve(&"a".repeat(MAX_PROMPT_BYTES + 1))
            .unwrap_err()
            .as_str(),
        "too_long"
    );
}

#[test]
fn rebound_values_are_validated() {
    let t = template(
        "show my 5 newest todos",
        &[("todo_list", json!({"limit": 5, "order": "newest_first"}))],
    );
    assert_eq!(
        served(&t, "show my 20 newest todos"),
        expect(&[("todo_list", json!({"limit": 20, "order": "newest_first"}))])
    );
    assert_eq!(served(&t, "show my 5000 newest todos"), Err("invalid_plan"));
    assert_eq!(
        served(&t, "show my 2.5 newest todos"),
        Err("literal_mismatch")
    );
    assert_eq!(
        served(&t, "show my 5 oldest todos"),
        Err("wording_mismatch")
    );
}

#[test]
fn huge_and_repetitive_prompts_are_quick() {
    let fixtures = fixtures();
    let started = std::time::Instant::now();
    let a = "a ".repeat(MAX_PROMPT_BYTES / 2 - 1);
    let prompts = [
        a.clone(),
        "add a todo to ".to_owned() + &"buy milk ".repeat(3000),
        "2 plus ".repeat(4000),
        "please, ".repeat(4000),
        "\"x\" ".repeat(8000),
        "'".repeat(MAX_PROMPT_BYTES),
    ];
    for p in &prompts {
        for t in &fixtures {
            let _ = t.serve(p);
        }
        for raw in [
            [("todo_add", json!({"title": "a"}))],
            [("todo_add", json!({"title": "buy milk"}))],
            [("calculator", json!({"expression": "2 + 2"}))],
        ] {
            let _ = PlanTemplate::from_plan(p, &plan(&raw), &builtin_registry());
        }
    }
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(20), "{took:?}");
    println!("huge prompts: {took:?}");
}

// ---------------------------------------------------------------------------------------------
// The paraphrase dataset.

#[derive(Default)]
struct Tally {
    pairs: usize,
    served: usize,
    rebound: usize,
    not_cacheable: usize,
    refused: std::collections::BTreeMap<&'static str, usize>,
    wrong: Vec<String>,
}

fn dataset_steps(v: &Value) -> Vec<PlanStep> {
    v.as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, s)| PlanStep {
            step_number: i as u32 + 1,
            tool: s["tool"].as_str().unwrap().to_owned(),
            input: s["input"].clone(),
            reasoning: String::new(),
        })
        .collect()
}

#[test]
fn the_guard_alone_serves_no_wrong_plan_on_the_paraphrase_dataset() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/paraphrases.jsonl");
    let text = std::fs::read_to_string(path).unwrap();
    let registry = builtin_registry();
    // CRANE_PARAPHRASE_VERBOSE=1: one line per pair.
    let verbose = std::env::var_os("CRANE_PARAPHRASE_VERBOSE").is_some();
    let mut tallies: std::collections::BTreeMap<String, Tally> = Default::default();
    let mut ids = std::collections::HashSet::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let pair: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", n + 1));
        let id = pair["id"].as_str().unwrap().to_owned();
        assert!(ids.insert(id.clone()), "duplicate id {id}");
        let kind = pair["kind"].as_str().unwrap().to_owned();
        assert!(
            ["paraphrase", "literal", "negation", "operation"].contains(&kind.as_str()),
            "{id}: kind {kind}"
        );
        let (a, b) = (pair["a"].as_str().unwrap(), pair["b"].as_str().unwrap());
        let plan_a = dataset_steps(&pair["plan_a"]);
        validate_plan(&plan_a, &registry).unwrap_or_else(|v| panic!("{id}: plan_a: {v:?}"));
        let plan_b = match &pair["plan_b"] {
            Value::Null => None,
            v => {
                let steps = dataset_steps(v);
                validate_plan(&steps, &registry).unwrap_or_else(|v| panic!("{id}: plan_b: {v:?}"));
                Some(steps)
            }
        };
        if kind == "paraphrase" {
            assert_eq!(
                plan_b.as_ref(),
                Some(&plan_a),
                "{id}: a paraphrase keeps the plan"
            );
        }
        let tally = tallies.entry(kind).or_default();
        tally.pairs += 1;
        let t = match PlanTemplate::from_plan(a, &plan_a, &registry) {
            Ok(t) => t,
            Err(why) => {
                if verbose {
                    println!("{id} not cacheable ({}): {a:?}", why.as_str());
                }
                tally.not_cacheable += 1;
                continue;
            }
        };
        // Persisted and read back, as the cache will.
        let t: PlanTemplate = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        match t.bind_checked(b, &registry) {
            Err(refusal) => {
                if verbose {
                    println!("{id} refused ({}): {a:?} -> {b:?}", refusal.as_str());
                }
                *tally.refused.entry(refusal.as_str()).or_default() += 1;
            }
            Ok(s) => {
                let got: Vec<(&str, &Value)> = s
                    .steps
                    .iter()
                    .map(|s| (s.tool.as_str(), &s.input))
                    .collect();
                let want: Option<Vec<(&str, &Value)>> = plan_b
                    .as_ref()
                    .map(|p| p.iter().map(|s| (s.tool.as_str(), &s.input)).collect());
                if verbose {
                    println!("{id} served ({}): {a:?} -> {b:?}", s.kind.as_str());
                }
                if want.as_ref() == Some(&got) {
                    tally.served += 1;
                    if s.kind == HitKind::Rebound {
                        tally.rebound += 1;
                    }
                } else {
                    tally
                        .wrong
                        .push(format!("{id}: {b:?} served {got:?}, want {want:?}"));
                }
            }
        }
    }
    let mut wrong = Vec::new();
    println!("paraphrase dataset, guard only (a's entry returned for b):");
    for (kind, t) in &tallies {
        println!(
            "  {kind:<10} pairs {:>3}  served {:>3} ({:>5.1}%, {} re-bound)  not cacheable {:>3}  refused {:>3} {:?}  wrong {}",
            t.pairs,
            t.served,
            100.0 * t.served as f64 / t.pairs.max(1) as f64,
            t.rebound,
            t.not_cacheable,
            t.refused.values().sum::<usize>(),
            t.refused,
            t.wrong.len()
        );
        wrong.extend(t.wrong.iter().cloned());
    }
    let count = |k: &str| tallies.get(k).map_or(0, |t| t.pairs);
    assert!(count("paraphrase") >= 60 && count("literal") >= 40);
    assert!(count("negation") >= 30 && count("operation") >= 30);
    assert!(tallies.values().map(|t| t.pairs).sum::<usize>() >= 160);
    assert!(
        wrong.is_empty(),
        "wrong plans served:\n{}",
        wrong.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Properties.

fn fixtures() -> Vec<PlanTemplate> {
    vec![
        template(
            "add a todo to buy milk",
            &[("todo_add", json!({"title": "buy milk"}))],
        ),
        template(
            "what is 7 times 6",
            &[("calculator", json!({"expression": "7 * 6"}))],
        ),
        template("list my todos", &[("todo_list", json!({}))]),
        template(
            "add todos: milk, eggs and bread",
            &[
                ("todo_add", json!({"title": "milk"})),
                ("todo_add", json!({"title": "eggs"})),
                ("todo_add", json!({"title": "bread"})),
            ],
        ),
        template(
            "add \"Buy Milk\" to my list",
            &[("todo_add", json!({"title": "Buy Milk"}))],
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn nothing_panics_on_any_prompt(prompt in "\\PC{0,120}", words in "[a-z 0-9\"'“”,.+*-]{0,80}") {
        for t in fixtures() {
            let _ = t.serve(&prompt);
            let _ = t.serve(&words);
            let _ = t.serve(&format!("add a todo to {words}"));
        }
        let raw = [("todo_add", json!({"title": words.trim()}))];
        let _ = PlanTemplate::from_plan(&prompt, &plan(&raw), &builtin_registry());
        let _ = PlanTemplate::from_plan(&words, &plan(&raw), &builtin_registry());
    }

    #[test]
    fn numbers_always_rebind(a in 0u64..1_000_000, b in 0u64..1_000_000) {
        let t = template(
            "what is 7 times 6",
            &[("calculator", json!({"expression": "7 * 6"}))],
        );
        let steps = t.bind(&format!("what is {a} times {b}")).unwrap();
        prop_assert_eq!(&steps[0].input, &json!({"expression": format!("{a} * {b}")}));
    }

    #[test]
    fn plain_titles_rebind_exactly(title in "[a-z]{3,9}( [a-z]{3,9}){0,3}") {
        let t = template(
            "add a todo to buy milk",
            &[("todo_add", json!({"title": "buy milk"}))],
        );
        let prompt = format!("add a todo to {title}");
        let toks = literals::tokenize(&title);
        let plain = literals::structure_markers(&toks, 0, toks.len() - 1).is_empty();
        match t.bind(&prompt) {
            Ok(steps) => {
                prop_assert!(plain, "{} served with structure", title);
                prop_assert_eq!(&steps[0].input, &json!({ "title": title }));
            }
            Err(_) => prop_assert!(!plain, "{} refused", title),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Mutations, with the rule planner as the oracle.

/// Every prompt of `data/golden.jsonl` and `data/paraphrases.jsonl` that the rule planner
/// plans and that makes a template is mutated at random (words inserted, replaced, dropped,
/// swapped, numbers inserted); whenever the guard serves a mutated prompt that the rule
/// planner also plans, both plans must be equal. (Mutations the rule planner rejects are
/// mostly broken English around the same request: "100 divided 8", "me what is 2+2"; they
/// are counted, and listed with CRANE_PARAPHRASE_VERBOSE=1.)
#[test]
fn mutated_prompts_are_served_only_as_the_rule_planner_reads_them() {
    use rand::{Rng, SeedableRng, rngs::StdRng};
    let verbose = std::env::var_os("CRANE_PARAPHRASE_VERBOSE").is_some();
    let registry = builtin_registry();
    let rule = |p: &str| -> Option<Vec<(String, Value)>> {
        crane_rules::plan(p)
            .ok()
            .map(|s| s.into_iter().map(|s| (s.tool, s.input)).collect())
    };
    let mut seeds: Vec<String> = Vec::new();
    for file in ["golden.jsonl", "paraphrases.jsonl"] {
        let path = format!("{}/../../data/{file}", env!("CARGO_MANIFEST_DIR"));
        for line in std::fs::read_to_string(path).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            for key in ["prompt", "a", "b"] {
                if let Some(p) = v[key].as_str() {
                    seeds.push(p.to_owned());
                }
            }
        }
    }
    seeds.sort();
    seeds.dedup();
    let vocab = [
        "add",
        "delete",
        "remove",
        "complete",
        "done",
        "list",
        "show",
        "not",
        "don't",
        "never",
        "and",
        "then",
        "please",
        "the",
        "my",
        "a",
        "todo",
        "todos",
        "milk",
        "eggs",
        "buy",
        "call",
        "mom",
        "2",
        "3",
        "7",
        "plus",
        "minus",
        "times",
        "divided",
        "by",
        "to",
        "from",
        "of",
        "it",
        "first",
        "last",
        "one",
        "all",
        "open",
        "completed",
        "newest",
        "\"x\"",
        "me",
        "for",
        "5pm",
        "squared",
        "half",
        "what",
        "is",
        "calculate",
        ",",
        ".",
        "also",
        "no",
        "off",
        "mark",
        "as",
        "could",
        "you",
        "thanks",
        "i",
        "want",
        "tasks",
        "task",
        "display",
        "view",
        "create",
        "put",
        "new",
        "clear",
        "erase",
        "finish",
        "finished",
        "compute",
        "what's",
        "sum",
        "total",
        "less",
        "product",
        "over",
        "power",
        "root",
        "square",
        "percent",
        "mod",
        "min",
        "max",
        "average",
        "pending",
        "remaining",
        "&",
        "without",
        "except",
        "nothing",
        "can",
        "would",
        "will",
        "just",
        "hey",
        "ok",
        "now",
        "called",
        "named",
        "with",
        "on",
        "in",
        "at",
        "every",
        "each",
        "both",
        "any",
        "remind",
        "note",
        "check",
        "tick",
        "cross",
        "take",
        "rid",
        "get",
        "away",
        "second",
        "another",
        "item",
        "list",
        "an",
        "your",
        "our",
        "that",
        "this",
        "those",
        "which",
        "how",
        "many",
        "much",
        "left",
        "still",
        "have",
        "do",
        "so",
        "if",
        "when",
        "but",
        "or",
        "too",
        "again",
        "twice",
        "double",
        "zero",
        "ten",
        ":",
        ";",
        "!",
        "?",
        "-",
        "+",
        "*",
        "/",
        "(",
        ")",
        "'y'",
        "10",
        "0",
        "-1",
        "1,000",
        ".5",
    ];
    // CRANE_GUARD_MUTATIONS=1500 CRANE_GUARD_SEED=5: a deeper run.
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let rounds = env("CRANE_GUARD_MUTATIONS", 150);
    let mut rng = StdRng::seed_from_u64(env("CRANE_GUARD_SEED", 17));
    let (mut tried, mut served, mut unplannable) = (0, 0, 0);
    let mut wrong = Vec::new();
    for seed in &seeds {
        let Ok(plan_a) = crane_rules::plan(seed) else {
            continue;
        };
        let steps: Vec<PlanStep> = plan_a
            .into_iter()
            .enumerate()
            .map(|(i, s)| PlanStep {
                step_number: i as u32 + 1,
                tool: s.tool,
                input: s.input,
                reasoning: s.reasoning,
            })
            .collect();
        let Ok(t) = PlanTemplate::from_plan(seed, &steps, &registry) else {
            continue;
        };
        let words: Vec<&str> = seed.split_whitespace().collect();
        for _ in 0..rounds {
            let mut w: Vec<String> = words.iter().map(|s| (*s).to_owned()).collect();
            for _ in 0..rng.random_range(1..=3) {
                let at = rng.random_range(0..=w.len());
                let word = vocab[rng.random_range(0..vocab.len())].to_owned();
                match rng.random_range(0..5) {
                    0 => w.insert(at, word),
                    1 if at < w.len() => w[at] = word,
                    2 if at < w.len() && w.len() > 1 => {
                        w.remove(at);
                    }
                    3 if at + 1 < w.len() => w.swap(at, at + 1),
                    _ => w.insert(at, rng.random_range(0..100).to_string()),
                }
            }
            let b = w.join(" ");
            tried += 1;
            let Ok(s) = t.bind_checked(&b, &registry) else {
                continue;
            };
            served += 1;
            let got: Vec<(String, Value)> =
                s.steps.into_iter().map(|s| (s.tool, s.input)).collect();
            match rule(&b) {
                Some(want) if want == got => {}
                Some(want) => wrong.push(format!(
                    "{seed:?} -> {b:?}: served {got:?}, rule planner {want:?}"
                )),
                None => {
                    unplannable += 1;
                    if verbose {
                        println!("rule planner rejects {b:?} (from {seed:?}); served {got:?}");
                    }
                }
            }
        }
    }
    println!(
        "mutations: {tried} tried, {served} served, {unplannable} of them rejected by the rule planner, {} planned differently",
        wrong.len()
    );
    assert!(served > 1000, "too few served to mean anything: {served}");
    assert!(
        wrong.is_empty(),
        "served where the rule planner plans otherwise:\n{}",
        wrong.join("\n")
    );
}
