//! [`BodyWriter`]: request bodies written straight into bytes. A planner request is mostly a
//! fixed system prompt and schema that [`crate::ChatPrompt`] serialises once; building a
//! `serde_json::Value` per call would clone, re-escape and drop that tree on every request.
//! Keys are written as given (ASCII names from this crate); values go through serde_json, or
//! are copied as JSON text that was produced by serde_json earlier.

use serde::Serialize;

/// Writes one JSON object, member by member.
pub(crate) struct BodyWriter {
    out: Vec<u8>,
    members: usize,
}

impl BodyWriter {
    /// An empty object with room for about `capacity` bytes.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity);
        out.push(b'{');
        Self { out, members: 0 }
    }

    /// Starts the member `key` (a plain ASCII name: no escaping needed); its value follows.
    pub(crate) fn key(&mut self, key: &str) -> &mut Self {
        if self.members > 0 {
            self.out.push(b',');
        }
        self.members += 1;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self
    }

    /// Appends JSON text as is (produced by serde_json, or literal punctuation).
    pub(crate) fn raw(&mut self, json: &str) -> &mut Self {
        self.out.extend_from_slice(json.as_bytes());
        self
    }

    /// Appends `value` serialised by serde_json.
    pub(crate) fn json<T: Serialize + ?Sized>(&mut self, value: &T) -> &mut Self {
        // Writing into a Vec cannot fail, and the values written here (strings, numbers,
        // messages) always serialise.
        let _ = serde_json::to_writer(&mut self.out, value);
        self
    }

    /// The finished object.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.out.push(b'}');
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn writes_an_object() {
        let mut w = BodyWriter::with_capacity(16);
        w.key("a")
            .json("x\"y")
            .key("b")
            .raw("[1,2]")
            .key("c")
            .json(&3);
        let v: Value = serde_json::from_slice(&w.finish()).unwrap();
        assert_eq!(v, json!({"a": "x\"y", "b": [1, 2], "c": 3}));
        let v: Value = serde_json::from_slice(&BodyWriter::with_capacity(0).finish()).unwrap();
        assert_eq!(v, json!({}));
    }
}
