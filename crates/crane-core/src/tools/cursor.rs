//! The `todo_list` cursor: an opaque, URL-safe token naming the position after which the next
//! page starts, bound to the listing it came from (its order and done filter).
//!
//! Format (private, may change with its version digit): lower-case hex of the ASCII text
//! `1:{o|n}:{a|t|f}:{seq}` — version, order (oldest/newest first), done filter (all, true,
//! false), and the `seq` of the last todo of the page. Hex rather than base64: the token is
//! about 20 bytes, and hex needs no dependency and no padding or alphabet choices.

use crate::store::TodoOrder;

/// Longest string accepted as a cursor (a real one is far shorter).
const MAX_CURSOR_CHARS: usize = 128;

/// Why a cursor was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error(
        "invalid cursor '{0}': not a next_cursor returned by todo_list (pass next_cursor unchanged, or omit cursor for the first page)"
    )]
    Malformed(String),
    #[error(
        "the cursor belongs to a todo_list with {expected}, not {given}: pass the same done and order as the call that returned it, or omit cursor to start over"
    )]
    Mismatch { expected: String, given: String },
}

fn order_code(order: TodoOrder) -> char {
    match order {
        TodoOrder::OldestFirst => 'o',
        TodoOrder::NewestFirst => 'n',
    }
}

fn done_code(done: Option<bool>) -> char {
    match done {
        None => 'a',
        Some(true) => 't',
        Some(false) => 'f',
    }
}

fn describe(order: TodoOrder, done: Option<bool>) -> String {
    let order = match order {
        TodoOrder::OldestFirst => "order oldest_first",
        TodoOrder::NewestFirst => "order newest_first",
    };
    match done {
        None => format!("{order} and no done filter"),
        Some(d) => format!("{order} and done={d}"),
    }
}

/// The cursor of the page after the todo at `seq` in this listing.
pub fn encode(order: TodoOrder, done: Option<bool>, seq: i64) -> String {
    let text = format!("1:{}:{}:{seq}", order_code(order), done_code(done));
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The `seq` a cursor continues after, checked against the listing it is used with.
pub fn decode(cursor: &str, order: TodoOrder, done: Option<bool>) -> Result<i64, CursorError> {
    let malformed = || {
        let shown: String = cursor.chars().take(40).collect();
        let ellipsis = if cursor.chars().count() > 40 {
            "…"
        } else {
            ""
        };
        CursorError::Malformed(format!("{shown}{ellipsis}"))
    };
    if cursor.is_empty() || cursor.len() > MAX_CURSOR_CHARS || !cursor.len().is_multiple_of(2) {
        return Err(malformed());
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| {
            cursor
                .get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(malformed)?;
    let text = String::from_utf8(bytes).map_err(|_| malformed())?;
    let parts: Vec<&str> = text.split(':').collect();
    let [version, o, d, seq] = parts.as_slice() else {
        return Err(malformed());
    };
    let parse_order = |c: &str| match c {
        "o" => Some(TodoOrder::OldestFirst),
        "n" => Some(TodoOrder::NewestFirst),
        _ => None,
    };
    let parse_done = |c: &str| match c {
        "a" => Some(None),
        "t" => Some(Some(true)),
        "f" => Some(Some(false)),
        _ => None,
    };
    let (Some(cursor_order), Some(cursor_done)) = (parse_order(o), parse_done(d)) else {
        return Err(malformed());
    };
    let seq = seq
        .parse::<i64>()
        .ok()
        .filter(|s| *s >= 0 && *version == "1")
        .ok_or_else(malformed)?;
    if (cursor_order, cursor_done) != (order, done) {
        return Err(CursorError::Mismatch {
            expected: describe(cursor_order, cursor_done),
            given: describe(order, done),
        });
    }
    Ok(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_are_url_safe() {
        for (order, done, seq) in [
            (TodoOrder::OldestFirst, None, 1),
            (TodoOrder::NewestFirst, Some(true), 42),
            (TodoOrder::OldestFirst, Some(false), i64::MAX),
        ] {
            let c = encode(order, done, seq);
            assert!(
                c.chars().all(|c| c.is_ascii_hexdigit()),
                "{c} is not URL-safe"
            );
            assert_eq!(decode(&c, order, done), Ok(seq));
        }
    }

    #[test]
    fn malformed_cursors_say_so() {
        let valid = encode(TodoOrder::OldestFirst, None, 7);
        let broken = [
            String::new(),
            "abc".into(),
            "zz".into(),
            "not a cursor at all".into(),
            valid[..valid.len() - 2].to_owned() + "zz",
            // Valid hex, wrong text.
            "313a6f3a613a".into(),
            // Version 2, a negative position, a non-UTF-8 byte.
            encode(TodoOrder::OldestFirst, None, 7).replacen("31", "32", 1),
            "313a6f3a613a2d31".into(),
            "ff".into(),
            "a".repeat(200),
        ];
        for c in &broken {
            let err = decode(c, TodoOrder::OldestFirst, None).unwrap_err();
            assert!(matches!(err, CursorError::Malformed(_)), "{c}: {err:?}");
            assert!(
                err.to_string()
                    .contains("not a next_cursor returned by todo_list"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_cursor_only_continues_its_own_listing() {
        let c = encode(TodoOrder::NewestFirst, Some(false), 9);
        let err = decode(&c, TodoOrder::OldestFirst, Some(false)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the cursor belongs to a todo_list with order newest_first and done=false, not order oldest_first and done=false: pass the same done and order as the call that returned it, or omit cursor to start over"
        );
        assert!(matches!(
            decode(&c, TodoOrder::NewestFirst, None),
            Err(CursorError::Mismatch { .. })
        ));
    }
}
