//! Streamed answers: server-sent events (SSE) framing ([`SseLines`]) and the decoding of the
//! event payloads of both protocols into text deltas plus the final answer ([`Decoder`]).
//!
//! - OpenAI-compatible (`stream: true`, `stream_options.include_usage`): each `data:` payload is
//!   a `chat.completion.chunk`; the text is `choices[0].delta.content`, or in the forced
//!   tool-call mode `choices[0].delta.tool_calls[0].function.arguments`; the last chunk carries
//!   `usage` (with empty `choices`); `data: [DONE]` ends the stream.
//! - Anthropic Messages (`stream: true`): `message_start` (model, input tokens),
//!   `content_block_start` / `content_block_delta` (`text_delta` text, `input_json_delta`
//!   partial JSON of a `tool_use` block), `message_delta` (stop reason, output tokens),
//!   `message_stop`; `error` events and `ping`s.
//!
//! Only the text of the answer is handed out as it arrives (the caller's `on_text`); the answer
//! object is decided at the end exactly as for a plain response (the shared `answer`
//! functions of each protocol), so a streamed answer and a plain one decode the same way.
//!
//! SSE framing is hand-written (~60 lines): the one crate for it (`eventsource-stream`) is not
//! in the dependency tree and works on a `futures` `Stream` (reqwest's `stream` feature plus
//! futures-util), while the provider reads the body with `Response::chunk` and needs only the
//! `data:` field. Lines are split on `\n` (a `\r` before it dropped), decoded once complete (so
//! a UTF-8 character split between chunks is intact), `data:` values of one event joined by
//! `\n`, comments and other fields ignored, and a line longer than [`MAX_LINE_BYTES`] is an
//! error rather than unbounded memory.

use serde_json::Value;

use crate::config::{ProviderKind, StructuredMode};
use crate::types::{BadOutput, Parsed, Usage, arguments_object};
use crate::{anthropic, openai};

/// Longest SSE line accepted (one event's JSON; a chunk is a token or a few).
pub(crate) const MAX_LINE_BYTES: usize = 1 << 20;

/// Splits a byte stream into SSE events and yields each event's `data` payload.
#[derive(Debug, Default)]
pub(crate) struct SseLines {
    line: Vec<u8>,
    data: Option<String>,
}

/// A line over [`MAX_LINE_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LineTooLong;

impl SseLines {
    /// Feeds a chunk; returns the `data` payloads of the events it completed.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Result<Vec<String>, LineTooLong> {
        let mut events = Vec::new();
        let mut rest = chunk;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&rest[..nl]);
            rest = &rest[nl + 1..];
            if self.line.len() > MAX_LINE_BYTES {
                return Err(LineTooLong);
            }
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, &mut events);
        }
        self.line.extend_from_slice(rest);
        if self.line.len() > MAX_LINE_BYTES {
            return Err(LineTooLong);
        }
        Ok(events)
    }

    /// The end of the body: an unterminated last line and event still count.
    pub(crate) fn finish(&mut self) -> Vec<String> {
        let mut events = Vec::new();
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, &mut events);
        }
        events.extend(self.data.take());
        events
    }

    fn line_done(&mut self, line: &[u8], events: &mut Vec<String>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            events.extend(self.data.take());
            return;
        }
        if line.starts_with(b":") {
            return;
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (text.as_ref(), ""),
        };
        if field == "data" {
            match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            }
        }
    }
}

/// Why a stream cannot be used: the server reported an error in it, or an event is not what
/// the protocol sends.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StreamProblem {
    /// An `error` event (overloaded, internal error...): an availability failure.
    ServerError(String),
    /// Not the protocol (a payload that is not JSON...).
    Bad(BadOutput),
}

/// Accumulates one streamed answer.
#[derive(Debug)]
pub(crate) struct Decoder {
    kind: ProviderKind,
    mode: StructuredMode,
    text: String,
    /// Tool-call arguments (OpenAI) or `tool_use` input JSON (Anthropic).
    tool_json: String,
    /// Whether the answer is (also) a tool call.
    tool_call: bool,
    /// OpenAI: the refusal text, when the model refused.
    refusal: String,
    model: Option<String>,
    usage: Usage,
    finish_reason: Option<String>,
    done: bool,
    events: usize,
}

impl Decoder {
    pub(crate) fn new(kind: ProviderKind, mode: StructuredMode) -> Self {
        Self {
            kind,
            mode,
            text: String::new(),
            tool_json: String::new(),
            tool_call: false,
            refusal: String::new(),
            model: None,
            usage: Usage::default(),
            finish_reason: None,
            done: false,
            events: 0,
        }
    }

    /// Whether the stream said it is complete (`[DONE]`, `message_stop`).
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// Decodes one event's payload; returns the answer text it adds (what `on_text` gets).
    pub(crate) fn event(&mut self, data: &str) -> Result<Option<String>, StreamProblem> {
        let data = data.trim();
        if data.is_empty() {
            return Ok(None);
        }
        if data == "[DONE]" {
            self.done = true;
            return Ok(None);
        }
        let v: Value = serde_json::from_str(data).map_err(|e| {
            StreamProblem::Bad(BadOutput::new(
                format!("a streamed event is not JSON ({e})"),
                data,
            ))
        })?;
        self.events += 1;
        match self.kind {
            ProviderKind::OpenAi => self.openai_event(&v),
            ProviderKind::Anthropic => self.anthropic_event(&v),
        }
    }

    fn openai_event(&mut self, v: &Value) -> Result<Option<String>, StreamProblem> {
        if let Some(error) = v.get("error") {
            return Err(StreamProblem::ServerError(error_text(error)));
        }
        if let Some(model) = v["model"].as_str().filter(|m| !m.is_empty()) {
            self.model = Some(model.to_owned());
        }
        if v["usage"].is_object() {
            self.usage = Usage {
                input_tokens: v["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
                output_tokens: v["usage"]["completion_tokens"].as_u64().unwrap_or(0),
            };
        }
        let Some(choice) = v["choices"].as_array().and_then(|c| c.first()) else {
            return Ok(None);
        };
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.finish_reason = Some(reason.to_owned());
        }
        let delta = &choice["delta"];
        if let Some(refusal) = delta["refusal"].as_str() {
            self.refusal.push_str(refusal);
        }
        let mut out = String::new();
        if let Some(args) = delta["tool_calls"]
            .as_array()
            .and_then(|calls| calls.first())
            .and_then(|call| call["function"]["arguments"].as_str())
        {
            self.tool_call = true;
            self.tool_json.push_str(args);
            if self.mode == StructuredMode::Tools {
                out.push_str(args);
            }
        }
        if let Some(content) = delta["content"].as_str() {
            self.text.push_str(content);
            // In the tool-call mode the answer is the arguments; content counts only from a
            // server that ignores tool_choice and answers in text.
            if self.mode != StructuredMode::Tools || !self.tool_call {
                out.push_str(content);
            }
        }
        Ok((!out.is_empty()).then_some(out))
    }

    fn anthropic_event(&mut self, v: &Value) -> Result<Option<String>, StreamProblem> {
        match v["type"].as_str().unwrap_or_default() {
            "error" => Err(StreamProblem::ServerError(error_text(&v["error"]))),
            "message_start" => {
                let message = &v["message"];
                if let Some(model) = message["model"].as_str().filter(|m| !m.is_empty()) {
                    self.model = Some(model.to_owned());
                }
                self.usage.input_tokens = message["usage"]["input_tokens"].as_u64().unwrap_or(0);
                self.usage.output_tokens = message["usage"]["output_tokens"].as_u64().unwrap_or(0);
                Ok(None)
            }
            "content_block_start" => {
                if v["content_block"]["type"] == "tool_use" {
                    self.tool_call = true;
                }
                Ok(None)
            }
            "content_block_delta" => {
                let delta = &v["delta"];
                match delta["type"].as_str().unwrap_or_default() {
                    "text_delta" => {
                        let text = delta["text"].as_str().unwrap_or_default();
                        self.text.push_str(text);
                        let wanted = self.mode != StructuredMode::Tools;
                        Ok((wanted && !text.is_empty()).then(|| text.to_owned()))
                    }
                    "input_json_delta" => {
                        let json = delta["partial_json"].as_str().unwrap_or_default();
                        self.tool_call = true;
                        self.tool_json.push_str(json);
                        let wanted = self.mode == StructuredMode::Tools;
                        Ok((wanted && !json.is_empty()).then(|| json.to_owned()))
                    }
                    _ => Ok(None),
                }
            }
            "message_delta" => {
                if let Some(reason) = v["delta"]["stop_reason"].as_str() {
                    self.finish_reason = Some(reason.to_owned());
                }
                if let Some(output) = v["usage"]["output_tokens"].as_u64() {
                    self.usage.output_tokens = output;
                }
                if let Some(input) = v["usage"]["input_tokens"].as_u64().filter(|&n| n > 0) {
                    self.usage.input_tokens = input;
                }
                Ok(None)
            }
            "message_stop" => {
                self.done = true;
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// The answer, decided as for a plain response of the same protocol.
    pub(crate) fn finish(self) -> Result<Parsed, BadOutput> {
        let summary = || {
            format!(
                "{} streamed events; text: {}",
                self.events,
                if self.text.is_empty() {
                    &self.tool_json
                } else {
                    &self.text
                }
            )
        };
        if self.events == 0 {
            return Err(BadOutput::new("the stream carried no events", ""));
        }
        let (value, raw_text) = match self.kind {
            ProviderKind::OpenAi => {
                if !self.refusal.is_empty() && self.text.is_empty() && self.tool_json.is_empty() {
                    return Err(BadOutput::new("the model refused", self.refusal.clone()));
                }
                let tool_answer = (self.mode == StructuredMode::Tools && self.tool_call)
                    .then(|| arguments_object(&Value::String(self.tool_json.clone())))
                    .flatten();
                let content = Some(self.text.clone());
                openai::answer(
                    self.mode,
                    tool_answer,
                    content,
                    self.finish_reason.as_deref(),
                    &summary(),
                )?
            }
            ProviderKind::Anthropic => {
                let tool_input = if self.mode == StructuredMode::Tools && self.tool_call {
                    // An empty tool_use input is `{}` (the API sends no delta for it).
                    let json = if self.tool_json.trim().is_empty() {
                        "{}"
                    } else {
                        &self.tool_json
                    };
                    serde_json::from_str::<Value>(json)
                        .ok()
                        .filter(Value::is_object)
                } else {
                    None
                };
                anthropic::answer(
                    self.mode,
                    tool_input,
                    self.text.clone(),
                    self.finish_reason.as_deref(),
                    &summary(),
                )?
            }
        };
        Ok(Parsed {
            value,
            raw_text,
            model: self.model,
            usage: self.usage,
            finish_reason: self.finish_reason,
        })
    }
}

/// The message of an error object (`{"message": ...}`, or `{"error": {"message": ...}}`).
fn error_text(error: &Value) -> String {
    error["message"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| error.as_str().map(str::to_owned))
        .unwrap_or_else(|| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn frames(body: &str, split: usize) -> Vec<String> {
        let mut sse = SseLines::default();
        let mut out = Vec::new();
        for chunk in body.as_bytes().chunks(split.max(1)) {
            out.extend(sse.push(chunk).unwrap());
        }
        out.extend(sse.finish());
        out
    }

    #[test]
    fn sse_framing_at_every_chunk_size() {
        let body = ": comment\r\nevent: content_block_delta\r\ndata: {\"a\":\"é\"}\r\n\r\n\
                    data: one\ndata: two\n\nid: 3\ndata:no-space\n\ndata: [DONE]";
        for split in 1..body.len() {
            assert_eq!(
                frames(body, split),
                ["{\"a\":\"é\"}", "one\ntwo", "no-space", "[DONE]"],
                "split {split}"
            );
        }
    }

    #[test]
    fn sse_lines_are_bounded() {
        let mut sse = SseLines::default();
        let long = vec![b'x'; MAX_LINE_BYTES + 1];
        assert_eq!(sse.push(&long), Err(LineTooLong));
    }

    fn openai_chunk(delta: Value, finish: Option<&str>) -> String {
        json!({"model": "served", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            .to_string()
    }

    #[test]
    fn openai_content_deltas_and_usage() {
        let mut d = Decoder::new(ProviderKind::OpenAi, StructuredMode::JsonObject);
        let mut text = String::new();
        for event in [
            openai_chunk(json!({"role": "assistant", "content": ""}), None),
            openai_chunk(json!({"content": "{\"steps\""}), None),
            openai_chunk(json!({"content": ": []}"}), None),
            openai_chunk(json!({}), Some("stop")),
            json!({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}})
                .to_string(),
            "[DONE]".to_owned(),
        ] {
            if let Some(delta) = d.event(&event).unwrap() {
                text.push_str(&delta);
            }
        }
        assert!(d.is_done());
        assert_eq!(text, "{\"steps\": []}");
        let p = d.finish().unwrap();
        assert_eq!(p.value, json!({"steps": []}));
        assert_eq!(p.usage.input_tokens, 7);
        assert_eq!(p.usage.output_tokens, 3);
        assert_eq!(p.model.as_deref(), Some("served"));
        assert_eq!(p.finish_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn openai_tool_call_arguments() {
        let mut d = Decoder::new(ProviderKind::OpenAi, StructuredMode::Tools);
        let call = |args: &str| {
            openai_chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": args}}]}),
                None,
            )
        };
        let mut text = String::new();
        for event in [call("{\"a\""), call(": 1}")] {
            text.push_str(&d.event(&event).unwrap().unwrap());
        }
        assert_eq!(text, "{\"a\": 1}");
        assert_eq!(d.finish().unwrap().value, json!({"a": 1}));
    }

    #[test]
    fn openai_errors_and_bad_streams() {
        let mut d = Decoder::new(ProviderKind::OpenAi, StructuredMode::JsonObject);
        assert!(matches!(
            d.event("{\"error\": {\"message\": \"overloaded\"}}"),
            Err(StreamProblem::ServerError(m)) if m == "overloaded"
        ));
        assert!(matches!(d.event("not json"), Err(StreamProblem::Bad(_))));
        let d = Decoder::new(ProviderKind::OpenAi, StructuredMode::JsonObject);
        assert!(d.finish().is_err());
        let mut d = Decoder::new(ProviderKind::OpenAi, StructuredMode::Prompt);
        d.event(&openai_chunk(json!({"content": "{\"a\":"}), Some("length")))
            .unwrap();
        let err = d.finish().unwrap_err();
        assert!(err.reason.contains("length"), "{err:?}");
    }

    #[test]
    fn anthropic_tool_use_and_text() {
        let events = [
            json!({"type": "message_start", "message": {"model": "claude-x", "usage": {"input_tokens": 12, "output_tokens": 1}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Sure."}}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t", "name": "plan", "input": {}}}),
            json!({"type": "ping"}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"a\""}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ": 1}"}}),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 5}}),
            json!({"type": "message_stop"}),
        ];
        let mut d = Decoder::new(ProviderKind::Anthropic, StructuredMode::Tools);
        let mut text = String::new();
        for e in &events {
            if let Some(delta) = d.event(&e.to_string()).unwrap() {
                text.push_str(&delta);
            }
        }
        assert!(d.is_done());
        assert_eq!(text, "{\"a\": 1}");
        let p = d.finish().unwrap();
        assert_eq!(p.value, json!({"a": 1}));
        assert_eq!((p.usage.input_tokens, p.usage.output_tokens), (12, 5));
        assert_eq!(p.finish_reason.as_deref(), Some("tool_use"));
        assert_eq!(p.model.as_deref(), Some("claude-x"));

        let mut d = Decoder::new(ProviderKind::Anthropic, StructuredMode::Prompt);
        let delta = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "```json\n{\"b\": 2}\n```"}});
        assert!(d.event(&delta.to_string()).unwrap().is_some());
        assert_eq!(d.finish().unwrap().value, json!({"b": 2}));

        let mut d = Decoder::new(ProviderKind::Anthropic, StructuredMode::Tools);
        let error = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
        assert_eq!(
            d.event(&error.to_string()),
            Err(StreamProblem::ServerError("Overloaded".into()))
        );
    }
}
