//! Fuzz target: step references (`crane_core::domain::reference`): parsing, checking and
//! resolving `${steps.N.path}` strings against arbitrary JSON step outputs.
//!
//! Fuzz input: UTF-8 text. The first line is the string to parse (a step's input string);
//! the rest, if it parses as JSON, gives the earlier steps' outputs (an array is one output
//! per step, any other value is step 1's output); otherwise a fixed set of outputs shaped
//! like the built-in tools' (calculator, todo_add, todo_list) is used.
//!
//! Invariants (besides "never panics"):
//! - parsing is deterministic; a string without `${` is one text fragment equal to itself;
//!   there are never two text fragments in a row, nor an empty one beside a reference;
//! - every parsed reference prints (`Display`) as text that parses back to the same
//!   reference, with a step number >= 1;
//! - `references_in` finds exactly the references `parse_string` does, at `input`;
//! - `resolve` fails exactly when parsing fails or some reference's `lookup` fails; a string
//!   that is exactly one reference resolves to the looked-up value itself, any other string
//!   to a string; text without references resolves to itself with `$${` unescaped;
//! - `lookup` only succeeds for steps that have an output;
//! - resolving arrays and objects (the outputs value itself, wrapped as a step input) keeps
//!   their shape and keys.
#![no_main]

use std::sync::LazyLock;

use crane_core::domain::reference::{self, Fragment, Reference, ReferenceError};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

static DEFAULT_OUTPUTS: LazyLock<Vec<Value>> = LazyLock::new(|| {
    vec![
        json!({"expression": "7 * 6", "value": 42}),
        json!({"todo": {"id": "t1", "title": "buy milk", "done": false}}),
        json!({"todos": [{"id": "a", "title": "x"}, {"id": "b", "title": "y"}],
               "count": 2, "next_cursor": null}),
        json!({"matched": "exact", "todo": {"id": "b", "done": true}}),
        json!([1, [2, [3]], {"0": "zero", "-1": "minus one"}]),
        json!("plain text"),
    ]
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (template, rest) = text.split_once('\n').unwrap_or((text, ""));
    let parsed_outputs: Vec<Value> = match serde_json::from_str::<Value>(rest) {
        Ok(Value::Array(items)) => items,
        Ok(other) => vec![other],
        Err(_) => Vec::new(),
    };
    // An empty list of outputs is checked for every input anyway (below).
    let outputs: &[Value] = if parsed_outputs.is_empty() {
        &DEFAULT_OUTPUTS
    } else {
        &parsed_outputs
    };

    let parsed = reference::parse_string(template);
    assert_eq!(
        parsed,
        reference::parse_string(template),
        "not deterministic"
    );
    let as_value = Value::String(template.to_owned());
    let found = reference::references_in(&as_value);
    match &parsed {
        Ok(frags) => {
            check_fragments(template, frags);
            let refs: Vec<&Reference> = frags
                .iter()
                .filter_map(|f| match f {
                    Fragment::Ref(r) => Some(r),
                    Fragment::Text(_) => None,
                })
                .collect();
            let found = found.unwrap_or_else(|e| panic!("references_in failed: {e:?}"));
            assert_eq!(found.len(), refs.len(), "{template:?}");
            for ((path, a), b) in found.iter().zip(&refs) {
                assert_eq!(path, "input");
                assert_eq!(a, *b);
            }
            check_resolve(template, frags, &refs, outputs);
            // The same string against the other set of outputs, and against none.
            check_resolve(template, frags, &refs, &[]);
        }
        Err(e) => {
            assert!(matches!(e, ReferenceError::Malformed { .. }), "{e:?}");
            assert!(!e.to_string().is_empty());
            assert!(
                template.contains("${"),
                "{template:?} failed without '${{': {e}"
            );
            let (path, e2) = found.expect_err("references_in accepted what parse_string refused");
            assert_eq!(path, "input");
            assert_eq!(&e2, e);
            assert!(reference::resolve(&as_value, outputs).is_err());
        }
    }

    // Structured values: the outputs themselves as a step input (strings inside may hold
    // references to one another).
    let input = json!({ "outputs": outputs, "s": template });
    match reference::resolve(&input, outputs) {
        Ok(resolved) => {
            let map = resolved
                .as_object()
                .expect("an object resolves to an object");
            assert_eq!(map.len(), 2);
            assert_eq!(
                map["outputs"].as_array().map(Vec::len),
                Some(outputs.len()),
                "an array resolved to a different length"
            );
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    if let Ok(refs) = reference::references_in(&input) {
        for (path, r) in refs {
            assert!(path.starts_with("input."), "{path}");
            assert!(r.step >= 1);
        }
    }
});

fn check_fragments(template: &str, frags: &[Fragment]) {
    assert!(!frags.is_empty());
    if !template.contains("${") {
        assert_eq!(frags, [Fragment::Text(template.to_owned())]);
    }
    for pair in frags.windows(2) {
        assert!(
            !matches!(pair, [Fragment::Text(_), Fragment::Text(_)]),
            "{template:?}: two text fragments in a row: {frags:?}"
        );
    }
    if frags.len() > 1 {
        for f in frags {
            assert!(
                !matches!(f, Fragment::Text(t) if t.is_empty()),
                "{template:?}: empty text fragment in {frags:?}"
            );
        }
    }
    for f in frags {
        if let Fragment::Ref(r) = f {
            assert!(r.step >= 1);
            let printed = r.to_string();
            let again = reference::parse_string(&printed)
                .unwrap_or_else(|e| panic!("{r:?} prints as {printed:?}, which fails: {e}"));
            assert_eq!(
                again,
                [Fragment::Ref(r.clone())],
                "{r:?} prints as {printed:?}, which parses differently"
            );
        }
    }
}

fn check_resolve(template: &str, frags: &[Fragment], refs: &[&Reference], outputs: &[Value]) {
    let lookups: Vec<Result<&Value, ReferenceError>> =
        refs.iter().map(|r| reference::lookup(r, outputs)).collect();
    for (r, l) in refs.iter().zip(&lookups) {
        if l.is_ok() {
            assert!(
                (r.step as usize) <= outputs.len(),
                "lookup of {r} succeeded with {} outputs",
                outputs.len()
            );
        }
    }
    let resolved = reference::resolve(&Value::String(template.to_owned()), outputs);
    let first_error = lookups.iter().find_map(|l| l.as_ref().err());
    match (&resolved, first_error) {
        (Err(e), Some(expected)) => assert_eq!(e, expected, "{template:?}"),
        (Err(e), None) => panic!("{template:?}: resolve failed ({e}) but every lookup succeeds"),
        (Ok(v), Some(e)) => panic!("{template:?}: resolved to {v} but a lookup fails ({e})"),
        (Ok(v), None) => match frags {
            [Fragment::Ref(_)] => {
                let Ok(expected) = &lookups[0] else {
                    unreachable!()
                };
                assert_eq!(v, *expected, "{template:?}");
            }
            _ => {
                let Value::String(s) = v else {
                    panic!("{template:?} resolved to a non-string {v}");
                };
                if refs.is_empty() {
                    let literal: String = frags
                        .iter()
                        .map(|f| match f {
                            Fragment::Text(t) => t.as_str(),
                            Fragment::Ref(_) => unreachable!(),
                        })
                        .collect();
                    assert_eq!(s, &literal, "{template:?}");
                }
            }
        },
    }
}
