//! The Anthropic Messages wire format: the request body for the `tools` and `prompt` modes and
//! the decoding of a successful response (a `tool_use` block's input, or JSON in the text
//! blocks), with usage and stop reason.

use serde_json::Value;

use crate::config::StructuredMode;
use crate::extract::extract_json;
use crate::types::{BadOutput, ChatRequest, Parsed, Usage};
use crate::wire::BodyWriter;

/// The API version header value this client speaks.
pub(crate) const API_VERSION: &str = "2023-06-01";

/// Output token limit when the request sets none (the API requires one).
pub(crate) const DEFAULT_MAX_TOKENS: u32 = 1024;

/// `{base_url}/v1/messages`; a base URL that already ends in `/v1` is accepted too.
pub(crate) fn endpoint(base_url: &str) -> String {
    if base_url.ends_with("/v1") {
        format!("{base_url}/messages")
    } else {
        format!("{base_url}/v1/messages")
    }
}

/// The `POST /v1/messages` body for `mode` (`tools` or `prompt`; the provider never asks for
/// the `response_format` modes, which this API does not have), as JSON bytes. The prompt's
/// system text and schema are copied in as JSON text serialised once per
/// [`crate::ChatPrompt`]. `stream` asks for server-sent events (`"stream": true`).
pub(crate) fn build_body(
    req: &ChatRequest,
    model: &str,
    mode: StructuredMode,
    stream: bool,
) -> Vec<u8> {
    let prompt = &*req.prompt;
    let system = match mode {
        StructuredMode::Tools => prompt.system_json(),
        _ => Some(prompt.system_with_schema_json()),
    };
    let schema = match mode {
        StructuredMode::Tools => prompt.schema_json(),
        _ => "",
    };
    let conversation: usize = req.messages.iter().map(|m| m.content.len() + 32).sum();
    let capacity = system.map_or(0, str::len) + schema.len() + conversation + 256;
    let mut w = BodyWriter::with_capacity(capacity);
    w.key("model").json(model);
    w.key("max_tokens")
        .json(&req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS));
    if let Some(system) = system {
        w.key("system").raw(system);
    }
    w.key("messages").raw("[");
    let mut separator = "";
    for message in &req.messages {
        w.raw(separator).json(message);
        separator = ",";
    }
    w.raw("]");
    if let Some(t) = req.temperature {
        w.key("temperature").json(&crate::types::temperature_f64(t));
    }
    if stream {
        w.key("stream").raw("true");
    }
    if mode == StructuredMode::Tools {
        let name = prompt.tool_name();
        w.key("tools")
            .raw("[{\"name\":")
            .json(name)
            .raw(",\"description\":\"Return the answer as the input of this tool.\",\"input_schema\":")
            .raw(schema)
            .raw("}]");
        w.key("tool_choice")
            .raw("{\"type\":\"tool\",\"name\":")
            .json(name)
            .raw("}");
    }
    w.finish()
}

/// Decodes a 2xx body; `Err` carries why it is not a usable answer (→ InvalidOutput).
pub(crate) fn parse_response(body: &str, mode: StructuredMode) -> Result<Parsed, BadOutput> {
    let v: Value = serde_json::from_str(body)
        .map_err(|e| BadOutput::new(format!("response body is not JSON ({e})"), body))?;
    let model = v["model"].as_str().map(str::to_owned);
    let usage = Usage {
        input_tokens: v["usage"]["input_tokens"].as_u64().unwrap_or(0),
        output_tokens: v["usage"]["output_tokens"].as_u64().unwrap_or(0),
    };
    let finish_reason = v["stop_reason"].as_str().map(str::to_owned);
    let Some(blocks) = v["content"].as_array() else {
        return Err(BadOutput::new("response has no content blocks", body));
    };

    let tool_input = if mode == StructuredMode::Tools {
        blocks
            .iter()
            .find(|b| b["type"] == "tool_use")
            .map(|b| &b["input"])
            .filter(|input| input.is_object())
            .cloned()
    } else {
        None
    };
    let text: String = blocks
        .iter()
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str())
        .collect::<Vec<_>>()
        .join("");
    let (value, raw_text) = answer(mode, tool_input, text, finish_reason.as_deref(), body)?;
    Ok(Parsed {
        value,
        raw_text,
        model,
        usage,
        finish_reason,
    })
}

/// The answer object: the `tool_use` input when there is one, else the JSON in the text blocks.
/// Shared by the plain and the streamed decoding.
pub(crate) fn answer(
    mode: StructuredMode,
    tool_input: Option<Value>,
    text: String,
    finish_reason: Option<&str>,
    body: &str,
) -> Result<(Value, String), BadOutput> {
    if let Some(input) = tool_input {
        let raw = input.to_string();
        return Ok((input, raw));
    }
    match extract_json(&text) {
        Some(value) => Ok((value, text)),
        None if mode == StructuredMode::Tools && text.is_empty() => {
            Err(BadOutput::new("the model made no tool_use call", body))
        }
        None if finish_reason == Some("max_tokens") => Err(BadOutput::new(
            "output truncated at max_tokens before the JSON was complete \
             (stop_reason=max_tokens)",
            text,
        )),
        None => Err(BadOutput::new("text content is not a JSON object", text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Message;
    use serde_json::{Map, json};

    /// The body as `build_body` built it before it wrote bytes directly: a `Value` per call.
    /// The byte writer must produce the same JSON.
    fn value_body(req: &ChatRequest, model: &str, mode: StructuredMode) -> Value {
        let system = match mode {
            StructuredMode::Tools => req.prompt.system().to_owned(),
            _ => req.prompt.system_with_schema(),
        };
        let messages: Vec<Value> = req
            .messages
            .iter()
            .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
            .collect();
        let mut body = Map::new();
        body.insert("model".into(), json!(model));
        body.insert(
            "max_tokens".into(),
            json!(req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)),
        );
        if !system.is_empty() {
            body.insert("system".into(), json!(system));
        }
        body.insert("messages".into(), Value::Array(messages));
        if let Some(t) = req.temperature {
            body.insert(
                "temperature".into(),
                json!(crate::types::temperature_f64(t)),
            );
        }
        if mode == StructuredMode::Tools {
            let name = req.prompt.tool_name();
            body.insert(
                "tools".into(),
                json!([{
                    "name": name,
                    "description": "Return the answer as the input of this tool.",
                    "input_schema": req.prompt.schema(),
                }]),
            );
            body.insert("tool_choice".into(), json!({"type": "tool", "name": name}));
        }
        Value::Object(body)
    }

    fn body(req: &ChatRequest, model: &str, mode: StructuredMode) -> Value {
        serde_json::from_slice(&build_body(req, model, mode, false)).unwrap()
    }

    #[test]
    fn bodies_match_the_value_built_bodies() {
        let schema = json!({"type": "object", "description": "\"q\" \\ \u{2} ü"});
        let mut req = ChatRequest::new(
            "You plan.\n\"Really\" é\n\n",
            vec![
                Message::user("add \"2\" and 2"),
                Message::assistant("{}"),
                Message::user("again\n"),
            ],
            "plan v2",
            schema.clone(),
        );
        let mut requests = vec![req.clone()];
        req.temperature = Some(0.7);
        req.max_tokens = Some(300);
        requests.push(req);
        requests.push(ChatRequest::new("", vec![Message::user("x")], "", schema));
        requests.push(ChatRequest::default());
        for req in &requests {
            for mode in [StructuredMode::Tools, StructuredMode::Prompt] {
                assert_eq!(
                    body(req, "claude \"x\"", mode),
                    value_body(req, "claude \"x\"", mode),
                    "{mode} {req:?}"
                );
            }
        }
    }

    #[test]
    fn endpoint_accepts_both_base_forms() {
        assert_eq!(
            endpoint("https://api.anthropic.com"),
            "https://api.anthropic.com/v1/messages"
        );
        assert_eq!(
            endpoint("https://api.anthropic.com/v1"),
            "https://api.anthropic.com/v1/messages"
        );
    }

    #[test]
    fn bodies_per_mode() {
        let req = ChatRequest::new(
            "You plan.",
            vec![Message::user("hi")],
            "plan",
            json!({"type": "object"}),
        );
        let b = body(&req, "claude", StructuredMode::Tools);
        assert_eq!(b["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(b["system"], "You plan.");
        assert_eq!(b["tools"][0]["name"], "plan");
        assert_eq!(b["tools"][0]["input_schema"], *req.prompt.schema());
        assert_eq!(b["tool_choice"], json!({"type": "tool", "name": "plan"}));
        let b = body(&req, "claude", StructuredMode::Prompt);
        assert!(b.get("tools").is_none());
        assert!(b["system"].as_str().unwrap().contains("JSON object"));
    }

    #[test]
    fn parses_tool_use_and_text() {
        let body = json!({
            "model": "claude-x",
            "content": [
                {"type": "text", "text": "Sure."},
                {"type": "tool_use", "id": "t1", "name": "plan", "input": {"a": 1}}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 12, "output_tokens": 5}
        })
        .to_string();
        let p = parse_response(&body, StructuredMode::Tools).unwrap();
        assert_eq!(p.value, json!({"a": 1}));
        assert_eq!(p.usage.input_tokens, 12);
        assert_eq!(p.usage.output_tokens, 5);
        assert_eq!(p.finish_reason.as_deref(), Some("tool_use"));

        let body = json!({
            "content": [{"type": "text", "text": "```json\n{\"b\": 2}\n```"}],
            "stop_reason": "end_turn"
        })
        .to_string();
        let p = parse_response(&body, StructuredMode::Prompt).unwrap();
        assert_eq!(p.value, json!({"b": 2}));

        assert!(parse_response("{}", StructuredMode::Prompt).is_err());
        let body = json!({"content": []}).to_string();
        assert!(parse_response(&body, StructuredMode::Tools).is_err());
    }
}
