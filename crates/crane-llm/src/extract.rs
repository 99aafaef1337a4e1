//! Tolerant JSON extraction from model text ([`extract_json`]): small and local models wrap
//! their JSON in prose, Markdown fences or `<think>` blocks. Written by hand because it is ~100
//! lines and the crates that "repair" JSON guess far more than we want (a planner answer that
//! needs guessing should go through the planner's repair round instead).

use std::borrow::Cow;

use serde_json::Value;

/// Candidate `{` positions tried at most, bounding the work on pathological text.
const MAX_CANDIDATES: usize = 256;

/// Finds the JSON object in a model's answer, trying in order:
/// 1. the whole text (after dropping `<think>…</think>` reasoning blocks),
/// 2. each Markdown code fence (```` ```json ```` or bare ```` ``` ````),
/// 3. the first balanced `{...}` in prose that parses (brace matching ignores braces inside JSON
///    strings).
///
/// Only objects are returned (an answer is always an object); `None` when there is none.
/// Trailing commas and other non-JSON are not repaired.
pub fn extract_json(text: &str) -> Option<Value> {
    let text = strip_think_blocks(text);
    let trimmed = text.trim();
    if let Some(value) = parse_object(trimmed) {
        return Some(value);
    }
    for block in fenced_blocks(trimmed) {
        if let Some(value) = parse_object(block.trim()) {
            return Some(value);
        }
    }
    first_balanced_object(trimmed)
}

fn parse_object(text: &str) -> Option<Value> {
    serde_json::from_str::<Value>(text)
        .ok()
        .filter(Value::is_object)
}

/// Removes `<think>…</think>` blocks (reasoning models served by vLLM/Ollama emit them);
/// borrows the text when there are none.
fn strip_think_blocks(text: &str) -> Cow<'_, str> {
    if !text.contains("<think>") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<think>") {
        let Some(len) = rest[start..].find("</think>") else {
            break;
        };
        out.push_str(&rest[..start]);
        rest = &rest[start + len + "</think>".len()..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Contents of the Markdown code fences in `text` (the info string after the opening fence,
/// such as `json`, is skipped).
fn fenced_blocks(text: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("```") {
        let after_open = &rest[open + 3..];
        // Skip the info string up to the end of the line (a one-line fence has no newline).
        let body_start = after_open.find('\n').map_or(0, |nl| nl + 1);
        let body = &after_open[body_start..];
        let Some(close) = body.find("```") else {
            blocks.push(body);
            break;
        };
        blocks.push(&body[..close]);
        rest = &body[close + 3..];
    }
    blocks
}

/// The first `{...}` span that is balanced (string-aware) and parses as a JSON object.
fn first_balanced_object(text: &str) -> Option<Value> {
    let bytes = text.as_bytes();
    bytes
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'{')
        .take(MAX_CANDIDATES)
        .find_map(|(start, _)| {
            let end = matching_brace(bytes, start)?;
            parse_object(text.get(start..=end)?)
        })
}

/// Index of the `}` closing the `{` at `start`, ignoring braces inside JSON strings.
fn matching_brace(bytes: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (offset, &b) in bytes.get(start..)?.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' => depth += 1,
            b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(start + offset);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn whole_text() {
        assert_eq!(extract_json(" {\"a\": 1}\n"), Some(json!({"a": 1})));
    }

    #[test]
    fn fenced_json() {
        let text =
            "Here is the plan:\n```json\n{\"steps\": [{\"tool\": \"calculator\"}]}\n```\nDone.";
        assert_eq!(
            extract_json(text),
            Some(json!({"steps": [{"tool": "calculator"}]}))
        );
        let bare = "```\n{\"a\": true}\n```";
        assert_eq!(extract_json(bare), Some(json!({"a": true})));
        let unclosed = "```json\n{\"a\": 2}";
        assert_eq!(extract_json(unclosed), Some(json!({"a": 2})));
    }

    #[test]
    fn json_in_prose() {
        let text = "Sure! The answer is {\"value\": 300} as requested.";
        assert_eq!(extract_json(text), Some(json!({"value": 300})));
    }

    #[test]
    fn braces_inside_strings_do_not_confuse_matching() {
        let text = r#"Result: {"title": "use } and { in \"titles\"", "n": {"x": 1}} trailing }"#;
        assert_eq!(
            extract_json(text),
            Some(json!({"title": "use } and { in \"titles\"", "n": {"x": 1}}))
        );
    }

    #[test]
    fn skips_unparsable_brace_spans() {
        let text = "Set {x} first, then {\"ok\": 1}";
        assert_eq!(extract_json(text), Some(json!({"ok": 1})));
    }

    #[test]
    fn think_blocks_are_ignored() {
        let text = "<think>maybe {a} or {\"wrong\": 1}</think>\n{\"right\": 2}";
        assert_eq!(extract_json(text), Some(json!({"right": 2})));
    }

    #[test]
    fn no_json() {
        assert_eq!(extract_json("I cannot help with that."), None);
        assert_eq!(extract_json(""), None);
        assert_eq!(extract_json("{ not json }"), None);
        assert_eq!(extract_json("[1, 2, 3]"), None);
        assert_eq!(extract_json("{\"unclosed\": 1"), None);
        assert_eq!(extract_json("}}}{{{"), None);
    }
}
