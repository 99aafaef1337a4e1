//! The bound on what one step stores: a step output (or resolved input) larger than
//! [`MAX_STORED_BYTES`] of compact JSON is stored in the run's `execution_log` (and, for the
//! last step, its `result`) as a truncated copy:
//!
//! ```json
//! {"truncated": true, "size_bytes": 812345, "limit_bytes": 65536,
//!  "preview": {"todos": [{...}, {...}], "count": 5000, "next_cursor": "..."}}
//! ```
//!
//! `size_bytes` is the size of the full value's compact JSON; `preview` has the full value's
//! shape, cut to fit: arrays keep their leading items (whole items where possible), long
//! strings keep their beginning and end with "…", and the small fields of an object (numbers,
//! booleans, short strings such as `count` and ids) are kept before its large ones. The whole
//! truncated copy is at most [`MAX_STORED_BYTES`].
//!
//! The full output stays in memory while the run executes, so later steps of the same run
//! reference it whole. A run resumed from the store (after a restart, or a retry of a failed
//! run) has only the stored copy: a reference into a truncated output then fails the step with
//! [`super::reference::ReferenceError::Truncated`] — never a value read from the preview.

use std::io;

use serde_json::{Map, Value};

/// Largest step output (and resolved step input), in bytes of compact JSON, stored as it is.
/// 64 KiB holds a `todo_list` page of a few hundred todos; larger values are stored as a
/// truncated copy (see the module docs), which keeps a run's stored record and API response
/// bounded (at most 50 steps × 64 KiB per field).
pub const MAX_STORED_BYTES: usize = 64 * 1024;

/// Bytes left for the preview inside a truncated copy: the limit minus room for the wrapper.
const PREVIEW_BYTES: usize = MAX_STORED_BYTES - 256;

/// Nodes and characters the preview may visit, so that cutting any value is bounded work.
const PREVIEW_WORK: usize = 16 * MAX_STORED_BYTES;

/// Deepest nesting copied into a preview; deeper values are left out.
const PREVIEW_DEPTH: usize = 64;

/// Strings up to this many bytes count as small fields of an object (kept first).
const SMALL_FIELD_BYTES: usize = 256;

const ELLIPSIS: &str = "…";

/// Counts the bytes written to it.
struct Counter(usize);

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Size of a value's compact JSON, in bytes, without building the text.
pub fn json_size(value: &Value) -> usize {
    let mut counter = Counter(0);
    // Writing a `Value` to a writer that never fails cannot fail.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

/// What is stored for `value`: a copy of the value itself when its JSON is at most
/// [`MAX_STORED_BYTES`], else its truncated copy.
pub fn bounded(value: &Value) -> Value {
    let size = json_size(value);
    if size <= MAX_STORED_BYTES {
        return value.clone();
    }
    let mut cut = Cut {
        budget: PREVIEW_BYTES,
        work: PREVIEW_WORK,
    };
    let preview = cut
        .shrink(value, 0)
        .map_or(Value::Null, |(preview, _)| preview);
    serde_json::json!({
        "truncated": true,
        "size_bytes": size,
        "limit_bytes": MAX_STORED_BYTES,
        "preview": preview,
    })
}

/// The full size of a stored truncated copy; `None` for any other value.
pub fn truncated_size(stored: &Value) -> Option<u64> {
    let map = stored.as_object()?;
    let shaped = map.len() == 4
        && map.get("truncated") == Some(&Value::Bool(true))
        && map.get("limit_bytes").is_some_and(Value::is_u64)
        && map.contains_key("preview");
    if shaped {
        map.get("size_bytes").and_then(Value::as_u64)
    } else {
        None
    }
}

/// Bytes `c` takes inside a JSON string (serde_json's escaping).
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\u{08}' | '\u{0C}' | '\n' | '\r' | '\t' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// The running budget of one preview.
struct Cut {
    /// Bytes of JSON the preview may still take.
    budget: usize,
    /// Nodes and characters it may still visit.
    work: usize,
}

impl Cut {
    /// Takes `n` bytes of budget if there are that many.
    fn take(&mut self, n: usize) -> bool {
        if n <= self.budget {
            self.budget -= n;
            true
        } else {
            false
        }
    }

    /// A copy of `value` fitting the budget (which it uses up accordingly), and whether it is
    /// complete; `None` when nothing of it fits.
    fn shrink(&mut self, value: &Value, depth: usize) -> Option<(Value, bool)> {
        if self.work == 0 || depth > PREVIEW_DEPTH {
            return None;
        }
        self.work -= 1;
        match value {
            Value::Null | Value::Bool(_) | Value::Number(_) => {
                self.take(json_size(value)).then(|| (value.clone(), true))
            }
            Value::String(s) => self.string(s),
            Value::Array(items) => self.array(items, depth),
            Value::Object(map) => self.object(map, depth),
        }
    }

    fn string(&mut self, s: &str) -> Option<(Value, bool)> {
        // The escaped length, counted only as far as the budget reaches.
        let room = self.budget.checked_sub(2)?;
        let mut len = 0;
        let mut fits = true;
        for c in s.chars() {
            len += escaped_len(c);
            if len > room {
                fits = false;
                break;
            }
        }
        self.work = self.work.saturating_sub(len.min(room));
        if fits {
            self.budget -= len + 2;
            return Some((Value::String(s.to_owned()), true));
        }
        // Keep the beginning, an ellipsis and the end (most of it the beginning).
        let room = room.checked_sub(ELLIPSIS.len())?;
        if room < 8 {
            return None;
        }
        let head_room = room * 3 / 4;
        let mut head = String::new();
        let mut used = 0;
        for c in s.chars() {
            let n = escaped_len(c);
            if used + n > head_room {
                break;
            }
            used += n;
            head.push(c);
        }
        let mut tail: Vec<char> = Vec::new();
        for c in s.chars().rev() {
            let n = escaped_len(c);
            if used + n > room {
                break;
            }
            used += n;
            tail.push(c);
        }
        self.budget -= used + ELLIPSIS.len() + 2;
        head.push_str(ELLIPSIS);
        head.extend(tail.into_iter().rev());
        Some((Value::String(head), false))
    }

    fn array(&mut self, items: &[Value], depth: usize) -> Option<(Value, bool)> {
        if !self.take(2) {
            return None;
        }
        let mut out = Vec::new();
        for item in items {
            let comma = usize::from(!out.is_empty());
            let before = self.budget;
            if !self.take(comma) {
                return Some((Value::Array(out), false));
            }
            // Whole items only, unless not even the first one fits whole.
            match self.shrink(item, depth + 1) {
                Some((v, true)) => out.push(v),
                Some((v, false)) if out.is_empty() => {
                    out.push(v);
                    return Some((Value::Array(out), false));
                }
                _ => {
                    self.budget = before;
                    return Some((Value::Array(out), false));
                }
            }
        }
        Some((Value::Array(out), true))
    }

    fn object(&mut self, map: &Map<String, Value>, depth: usize) -> Option<(Value, bool)> {
        if !self.take(2) {
            return None;
        }
        let small = |v: &Value| match v {
            Value::String(s) => s.len() <= SMALL_FIELD_BYTES,
            Value::Array(_) | Value::Object(_) => false,
            _ => true,
        };
        // Small fields first (counts, ids, flags), then the large ones in order; the preview
        // keeps the original key order.
        let mut kept: Vec<Option<Value>> = vec![None; map.len()];
        let mut complete = true;
        let mut placed = 0usize;
        for pass_small in [true, false] {
            for (i, (key, value)) in map.iter().enumerate() {
                if small(value) != pass_small {
                    continue;
                }
                let before = self.budget;
                let key_len: usize = key.chars().map(escaped_len).sum::<usize>() + 3;
                if !self.take(key_len + usize::from(placed > 0)) {
                    complete = false;
                    continue;
                }
                match self.shrink(value, depth + 1) {
                    Some((v, whole)) => {
                        complete &= whole;
                        kept[i] = Some(v);
                        placed += 1;
                    }
                    None => {
                        self.budget = before;
                        complete = false;
                    }
                }
            }
        }
        let out: Map<String, Value> = map
            .keys()
            .zip(kept)
            .filter_map(|(k, v)| v.map(|v| (k.clone(), v)))
            .collect();
        Some((Value::Object(out), complete))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn todo(i: usize) -> Value {
        json!({"id": format!("0190-{i:04}"), "title": format!("todo number {i}"), "done": false,
               "created_at": "2025-01-01T00:00:00Z", "completed_at": null})
    }

    #[test]
    fn small_values_are_stored_as_they_are() {
        let v = json!({"todos": [todo(1)], "count": 1, "next_cursor": null});
        assert_eq!(bounded(&v), v);
        assert_eq!(json_size(&v), serde_json::to_string(&v).unwrap().len());
        assert_eq!(truncated_size(&v), None);
    }

    #[test]
    fn a_large_list_keeps_its_shape_small_fields_and_leading_whole_items() {
        let todos: Vec<Value> = (0..2000).map(todo).collect();
        let full = json!({"todos": todos, "count": 5000, "next_cursor": "abc"});
        let size = json_size(&full);
        assert!(size > MAX_STORED_BYTES);
        let stored = bounded(&full);
        assert!(
            json_size(&stored) <= MAX_STORED_BYTES,
            "{}",
            json_size(&stored)
        );
        assert_eq!(truncated_size(&stored), Some(size as u64));
        assert_eq!(stored["truncated"], true);
        assert_eq!(stored["limit_bytes"], MAX_STORED_BYTES);
        let preview = &stored["preview"];
        assert_eq!(preview["count"], 5000);
        assert_eq!(preview["next_cursor"], "abc");
        let kept = preview["todos"].as_array().unwrap();
        assert!(kept.len() > 100 && kept.len() < 2000, "{}", kept.len());
        // Every kept item is whole and in order.
        for (i, t) in kept.iter().enumerate() {
            assert_eq!(t, &todo(i));
        }
    }

    #[test]
    fn a_long_string_keeps_its_beginning_and_end() {
        let text = format!("start-{}-end", "x\"".repeat(100_000));
        let stored = bounded(&json!({"text": text, "n": 1}));
        assert!(json_size(&stored) <= MAX_STORED_BYTES);
        let kept = stored["preview"]["text"].as_str().unwrap();
        assert!(
            kept.starts_with("start-x\"") && kept.ends_with("x\"-end"),
            "{kept:.40}"
        );
        assert!(kept.contains(ELLIPSIS));
        assert_eq!(stored["preview"]["n"], 1);
        // A bare string works too.
        let stored = bounded(&Value::String("é".repeat(100_000)));
        assert!(stored["preview"].as_str().unwrap().contains(ELLIPSIS));
    }

    #[test]
    fn deep_or_wide_values_are_cut_with_bounded_work() {
        let mut deep = json!("leaf");
        for _ in 0..1_000 {
            deep = json!([deep, "x".repeat(10)]);
        }
        let stored = bounded(&deep);
        assert!(json_size(&stored) <= MAX_STORED_BYTES);
        let wide: Map<String, Value> = (0..50_000)
            .map(|i| (format!("key{i}"), json!([i, i + 1])))
            .collect();
        let stored = bounded(&Value::Object(wide));
        assert!(json_size(&stored) <= MAX_STORED_BYTES);
        assert!(!stored["preview"].as_object().unwrap().is_empty());
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            ".{0,40}".prop_map(Value::String),
            "[\"\\\\\u{1}a-z]{0,3000}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 400, 40, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..40).prop_map(Value::Array),
                prop::collection::btree_map("[a-z\"]{1,8}", inner, 0..20)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn a_preview_never_exceeds_its_budget(value in arb_json(), budget in 0usize..4000) {
            let mut cut = Cut { budget, work: PREVIEW_WORK };
            let before = json_size(&value);
            match cut.shrink(&value, 0) {
                Some((preview, complete)) => {
                    let size = json_size(&preview);
                    prop_assert!(size <= budget, "{size} > {budget}");
                    prop_assert_eq!(size, budget - cut.budget);
                    if complete {
                        prop_assert_eq!(&preview, &value);
                    }
                }
                None => prop_assert!(budget < before),
            }
            if before <= budget {
                let mut cut = Cut { budget, work: PREVIEW_WORK };
                prop_assert_eq!(cut.shrink(&value, 0), Some((value.clone(), true)));
            }
        }
    }
}
