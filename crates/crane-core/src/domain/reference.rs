//! References from one step's input to an earlier step's output.
//!
//! Syntax: `${steps.N.PATH}` inside any string of a step's input, where `N` is the 1-based step
//! number and `PATH` is dot-separated object keys and array indexes (negative indexes count from
//! the end, `-1` is the last element). A string that is exactly one reference is replaced by the
//! referenced JSON value (so types survive); a reference inside longer text is interpolated
//! (strings as-is, numbers in canonical JSON form, other values as compact JSON — never a
//! language-specific debug form). `$${` is an escaped literal `${`.
//!
//! Hand-written: the grammar is four tokens long and a template engine would add escaping
//! rules of its own to user text (todo titles are stored exactly as given).

use std::fmt;

use serde_json::Value;

/// One segment of a reference path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// An object key.
    Key(String),
    /// An array index; negative counts from the end.
    Index(i64),
}

/// A parsed `${steps.N.PATH}` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// 1-based step number referred to.
    pub step: u32,
    /// Path inside that step's output.
    pub path: Vec<Segment>,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${{steps.{}", self.step)?;
        for seg in &self.path {
            match seg {
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(i) => write!(f, ".{i}")?,
            }
        }
        f.write_str("}")
    }
}

/// Why a reference could not be parsed or resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error(
        "malformed reference '{text}': {reason} (expected ${{steps.N.path}}, e.g. ${{steps.1.todo.id}})"
    )]
    Malformed { text: String, reason: &'static str },
    #[error(
        "reference {reference} points to step {step}, but only steps before this one ({available}) can be referenced"
    )]
    NotEarlier {
        reference: String,
        step: u32,
        available: String,
    },
    #[error(
        "reference {reference} needs step {step}'s full output, but that output ({size_bytes} bytes) was over the {limit_bytes}-byte limit for stored outputs and only a truncated copy was kept; this run was resumed from the store (after a restart or a retry), where the full output no longer exists. Submit the task again as a new run"
    )]
    Truncated {
        reference: String,
        step: u32,
        size_bytes: u64,
        limit_bytes: usize,
    },
    #[error("reference {reference} could not be resolved: step {step} output has no '{at}'{hint}")]
    Missing {
        reference: String,
        step: u32,
        at: String,
        hint: String,
    },
}

/// A piece of a string input: literal text or a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fragment {
    Text(String),
    Ref(Reference),
}

/// Splits a string into literal text and references. Linear in the input length.
pub fn parse_string(s: &str) -> Result<Vec<Fragment>, ReferenceError> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(pos) = rest.find("${") {
        if rest[..pos].ends_with('$') {
            // `$${` is an escaped literal `${`.
            text.push_str(&rest[..pos - 1]);
            text.push_str("${");
            rest = &rest[pos + 2..];
            continue;
        }
        text.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        let Some(end) = after.find('}') else {
            return Err(ReferenceError::Malformed {
                text: truncate(&rest[pos..]),
                reason: "missing closing '}'",
            });
        };
        let reference = parse_body(&after[..end])?;
        if !text.is_empty() {
            out.push(Fragment::Text(std::mem::take(&mut text)));
        }
        out.push(Fragment::Ref(reference));
        rest = &after[end + 1..];
    }
    text.push_str(rest);
    if !text.is_empty() || out.is_empty() {
        out.push(Fragment::Text(text));
    }
    Ok(out)
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

fn parse_body(body: &str) -> Result<Reference, ReferenceError> {
    let malformed = |reason| ReferenceError::Malformed {
        text: format!("${{{}}}", truncate(body)),
        reason,
    };
    let mut parts = body.split('.');
    if parts.next() != Some("steps") {
        return Err(malformed("it must start with 'steps.'"));
    }
    let step = parts
        .next()
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| *n >= 1)
        .ok_or_else(|| malformed("the step number must be a positive integer"))?;
    let mut path = Vec::new();
    for part in parts {
        if part.is_empty() {
            return Err(malformed("empty path segment"));
        }
        path.push(match part.parse::<i64>() {
            Ok(i) => Segment::Index(i),
            Err(_) => Segment::Key(part.to_owned()),
        });
    }
    Ok(Reference { step, path })
}

/// Every reference in a JSON value, with the JSON path of the string that holds it
/// (e.g. `input.id`).
pub fn references_in(value: &Value) -> Result<Vec<(String, Reference)>, (String, ReferenceError)> {
    let mut found = Vec::new();
    walk(value, "input".to_owned(), &mut found)?;
    Ok(found)
}

fn walk(
    value: &Value,
    path: String,
    found: &mut Vec<(String, Reference)>,
) -> Result<(), (String, ReferenceError)> {
    match value {
        Value::String(s) if s.contains("${") => {
            for frag in parse_string(s).map_err(|e| (path.clone(), e))? {
                if let Fragment::Ref(r) = frag {
                    found.push((path.clone(), r));
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, format!("{path}[{i}]"), found)?;
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                walk(v, format!("{path}.{k}"), found)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Looks up a reference in the outputs of earlier steps (`outputs[0]` is step 1's output). An
/// output that is a stored truncated copy ([`super::output`]) cannot be referenced.
pub fn lookup<'a>(
    reference: &Reference,
    outputs: &'a [Value],
) -> Result<&'a Value, ReferenceError> {
    let idx = reference.step as usize - 1;
    let Some(mut current) = outputs.get(idx) else {
        return Err(ReferenceError::NotEarlier {
            reference: reference.to_string(),
            step: reference.step,
            available: available(outputs.len()),
        });
    };
    // Only a run resumed from the store sees a stored truncated copy here; reading into its
    // preview would give a wrong value.
    if let Some(size_bytes) = super::output::truncated_size(current) {
        return Err(ReferenceError::Truncated {
            reference: reference.to_string(),
            step: reference.step,
            size_bytes,
            limit_bytes: super::output::MAX_STORED_BYTES,
        });
    }
    let mut at = String::new();
    for seg in &reference.path {
        let next = match (seg, current) {
            (Segment::Key(k), Value::Object(map)) => map.get(k),
            (Segment::Index(i), Value::Object(map)) => map.get(&i.to_string()),
            (Segment::Index(i), Value::Array(items)) => {
                let len = items.len() as i64;
                let pos = if *i < 0 { len + i } else { *i };
                usize::try_from(pos).ok().and_then(|p| items.get(p))
            }
            _ => None,
        };
        if !at.is_empty() {
            at.push('.');
        }
        match seg {
            Segment::Key(k) => at.push_str(k),
            Segment::Index(i) => at.push_str(&i.to_string()),
        }
        let hint = match current {
            Value::Array(items) if items.is_empty() => " (the list is empty)".to_owned(),
            Value::Array(items) => format!(" (the list has {} item(s))", items.len()),
            _ => String::new(),
        };
        current = next.ok_or_else(|| ReferenceError::Missing {
            reference: reference.to_string(),
            step: reference.step,
            at: at.clone(),
            hint,
        })?;
    }
    Ok(current)
}

fn available(n: usize) -> String {
    match n {
        0 => "none".to_owned(),
        1 => "step 1".to_owned(),
        n => format!("steps 1-{n}"),
    }
}

/// Replaces every reference in `value` by what it points to in `outputs`, and unescapes `$${`.
pub fn resolve(value: &Value, outputs: &[Value]) -> Result<Value, ReferenceError> {
    Ok(match value {
        Value::String(s) if s.contains("${") => {
            let frags = parse_string(s)?;
            match frags.as_slice() {
                [Fragment::Ref(r)] => lookup(r, outputs)?.clone(),
                _ => {
                    let mut out = String::with_capacity(s.len());
                    for frag in &frags {
                        match frag {
                            Fragment::Text(t) => out.push_str(t),
                            Fragment::Ref(r) => match lookup(r, outputs)? {
                                Value::String(v) => out.push_str(v),
                                other => out.push_str(&other.to_string()),
                            },
                        }
                    }
                    Value::String(out)
                }
            }
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| resolve(v, outputs))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), resolve(v, outputs)?)))
                .collect::<Result<_, ReferenceError>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn whole_string_reference_keeps_the_type() {
        let outputs = vec![json!({"value": 42}), json!({"todo": {"id": "t1"}})];
        assert_eq!(
            resolve(&json!("${steps.1.value}"), &outputs).unwrap(),
            json!(42)
        );
        assert_eq!(
            resolve(&json!({"id": "${steps.2.todo.id}"}), &outputs).unwrap(),
            json!({"id": "t1"})
        );
    }

    #[test]
    fn embedded_references_are_interpolated_canonically() {
        let outputs = vec![json!({"value": 0.3, "name": "milk", "ok": true})];
        let v = resolve(
            &json!("${steps.1.value} * 2 for ${steps.1.name} ${steps.1.ok}"),
            &outputs,
        );
        assert_eq!(v.unwrap(), json!("0.3 * 2 for milk true"));
    }

    #[test]
    fn negative_indexes_count_from_the_end() {
        let outputs = vec![json!({"todos": [{"id": "a"}, {"id": "b"}]})];
        assert_eq!(
            resolve(&json!("${steps.1.todos.-1.id}"), &outputs).unwrap(),
            json!("b")
        );
        assert_eq!(
            resolve(&json!("${steps.1.todos.0.id}"), &outputs).unwrap(),
            json!("a")
        );
        let one = vec![json!({"todos": [{"id": "only"}]})];
        assert_eq!(
            resolve(&json!("${steps.1.todos.-1.id}"), &one).unwrap(),
            json!("only")
        );
    }

    #[test]
    fn missing_paths_name_the_gap() {
        let outputs = vec![json!({"todos": []})];
        let err = resolve(&json!("${steps.1.todos.0.id}"), &outputs).unwrap_err();
        assert_eq!(
            err.to_string(),
            "reference ${steps.1.todos.0.id} could not be resolved: step 1 output has no 'todos.0' (the list is empty)"
        );
        let err = resolve(&json!("${steps.2.x}"), &outputs).unwrap_err();
        assert!(
            err.to_string()
                .contains("only steps before this one (step 1)"),
            "{err}"
        );
    }

    #[test]
    fn a_truncated_stored_output_is_never_read() {
        let big =
            json!({"todos": (0..5000).map(|i| json!({"id": format!("t{i}")})).collect::<Vec<_>>()});
        let stored = super::super::output::bounded(&big);
        // The preview holds a first todo, but resolving from it would be a silent guess.
        assert!(stored["preview"]["todos"][0]["id"] == "t0");
        for r in [
            "${steps.1.todos.0.id}",
            "${steps.1}",
            "id ${steps.1.todos.-1.id}",
        ] {
            let err = resolve(&json!(r), std::slice::from_ref(&stored)).unwrap_err();
            assert!(
                matches!(err, ReferenceError::Truncated { step: 1, .. }),
                "{r}: {err:?}"
            );
            assert!(
                err.to_string()
                    .contains("over the 65536-byte limit for stored outputs"),
                "{err}"
            );
        }
    }

    #[test]
    fn escapes_and_malformed_references() {
        assert_eq!(
            resolve(&json!("cost $${x}"), &[]).unwrap(),
            json!("cost ${x}")
        );
        assert!(matches!(
            parse_string("${steps.1"),
            Err(ReferenceError::Malformed { .. })
        ));
        assert!(matches!(
            parse_string("${step.1.x}"),
            Err(ReferenceError::Malformed { .. })
        ));
        assert!(matches!(
            parse_string("${steps.0.x}"),
            Err(ReferenceError::Malformed { .. })
        ));
        let refs = references_in(&json!({"a": ["${steps.2.todo.id}"]})).unwrap();
        assert_eq!(refs[0].0, "input.a[0]");
        assert_eq!(refs[0].1.step, 2);
    }
}
