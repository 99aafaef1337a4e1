//! The OpenAI-compatible Chat Completions wire format (OpenAI, vLLM, Ollama, llama.cpp,
//! LiteLLM...): the request body for each [`StructuredMode`] and the decoding of a successful
//! response into the answer object, usage and finish reason.

use serde_json::Value;

use crate::config::StructuredMode;
use crate::extract::extract_json;
use crate::types::{BadOutput, ChatRequest, Parsed, Usage, arguments_object};
use crate::wire::BodyWriter;

/// `{base_url}/chat/completions` (base_url like `http://host:port/v1`).
pub(crate) fn endpoint(base_url: &str) -> String {
    format!("{base_url}/chat/completions")
}

/// The `POST /chat/completions` body for `mode`, as JSON bytes. The prompt's system text and
/// schema are copied in as JSON text serialised once per [`crate::ChatPrompt`]. `stream` asks
/// for server-sent events with a final usage chunk (`stream_options.include_usage`).
pub(crate) fn build_body(
    req: &ChatRequest,
    model: &str,
    mode: StructuredMode,
    stream: bool,
) -> Vec<u8> {
    let prompt = &*req.prompt;
    let system = match mode {
        // OpenAI's json_object only guarantees *some* object (and requires the word "JSON" in
        // the prompt), so the schema is spelled out for it as well as for the prompt mode.
        StructuredMode::JsonObject | StructuredMode::Prompt => {
            Some(prompt.system_with_schema_json())
        }
        StructuredMode::JsonSchema | StructuredMode::Tools => prompt.system_json(),
    };
    let schema = match mode {
        StructuredMode::Prompt => "",
        _ => prompt.schema_json(),
    };
    let conversation: usize = req.messages.iter().map(|m| m.content.len() + 32).sum();
    let capacity = system.map_or(0, str::len) + schema.len() + conversation + 256;
    let mut w = BodyWriter::with_capacity(capacity);
    w.key("model").json(model);
    w.key("messages").raw("[");
    let mut separator = "";
    if let Some(system) = system {
        w.raw("{\"role\":\"system\",\"content\":")
            .raw(system)
            .raw("}");
        separator = ",";
    }
    for message in &req.messages {
        w.raw(separator).json(message);
        separator = ",";
    }
    w.raw("]");
    if stream {
        w.key("stream").raw("true");
        w.key("stream_options").raw("{\"include_usage\":true}");
    } else {
        w.key("stream").raw("false");
    }
    if let Some(t) = req.temperature {
        w.key("temperature").json(&crate::types::temperature_f64(t));
    }
    if let Some(n) = req.max_tokens {
        w.key("max_tokens").json(&n);
    }
    let name = prompt.tool_name();
    match mode {
        StructuredMode::JsonSchema => {
            w.key("response_format")
                .raw("{\"type\":\"json_schema\",\"json_schema\":{\"name\":")
                .json(name)
                .raw(",\"strict\":true,\"schema\":")
                .raw(schema)
                .raw("}}");
        }
        StructuredMode::JsonObject => {
            w.key("response_format")
                .raw("{\"type\":\"json_object\",\"schema\":")
                .raw(schema)
                .raw("}");
        }
        StructuredMode::Tools => {
            w.key("tools")
                .raw("[{\"type\":\"function\",\"function\":{\"name\":")
                .json(name)
                .raw(",\"description\":\"Return the answer as the arguments of this function.\",\"parameters\":")
                .raw(schema)
                .raw("}}]");
            w.key("tool_choice")
                .raw("{\"type\":\"function\",\"function\":{\"name\":")
                .json(name)
                .raw("}}");
        }
        StructuredMode::Prompt => {}
    }
    w.finish()
}

/// Decodes a 2xx body. `Err` carries the reason it is not a usable answer (→ InvalidOutput);
/// the caller adds the redacted snippet.
pub(crate) fn parse_response(body: &str, mode: StructuredMode) -> Result<Parsed, BadOutput> {
    let v: Value = serde_json::from_str(body)
        .map_err(|e| BadOutput::new(format!("response body is not JSON ({e})"), body))?;
    let model = v["model"].as_str().map(str::to_owned);
    let usage = Usage {
        input_tokens: v["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
        output_tokens: v["usage"]["completion_tokens"].as_u64().unwrap_or(0),
    };
    let choice = match v["choices"].as_array().and_then(|c| c.first()) {
        Some(choice) => choice,
        None if v.get("error").is_some() => {
            return Err(BadOutput::new(
                "the server returned an error object instead of choices",
                body,
            ));
        }
        None => return Err(BadOutput::new("response has no choices", body)),
    };
    let finish_reason = choice["finish_reason"].as_str().map(str::to_owned);
    let message = &choice["message"];
    if let Some(refusal) = message["refusal"].as_str().filter(|r| !r.is_empty()) {
        return Err(BadOutput::new("the model refused", refusal));
    }

    let content = message_text(&message["content"]);
    let tool_answer = if mode == StructuredMode::Tools {
        message["tool_calls"]
            .as_array()
            .and_then(|calls| calls.first())
            .and_then(|call| arguments_object(&call["function"]["arguments"]))
    } else {
        None
    };
    let (value, raw_text) = answer(mode, tool_answer, content, finish_reason.as_deref(), body)?;
    Ok(Parsed {
        value,
        raw_text,
        model,
        usage,
        finish_reason,
    })
}

/// The answer object: the tool call's arguments when there are some, else the JSON in the
/// message text. Shared by the plain and the streamed decoding; `body` is quoted when the model
/// made no tool call at all.
pub(crate) fn answer(
    mode: StructuredMode,
    tool_answer: Option<(Value, String)>,
    content: Option<String>,
    finish_reason: Option<&str>,
    body: &str,
) -> Result<(Value, String), BadOutput> {
    // A server that ignores tool_choice may still answer with JSON text: accept it.
    if let Some(answer) = tool_answer {
        return Ok(answer);
    }
    let text = content.unwrap_or_default();
    match extract_json(&text) {
        Some(value) => Ok((value, text)),
        None if mode == StructuredMode::Tools && text.is_empty() => {
            Err(BadOutput::new("the model made no tool call", body))
        }
        None if finish_reason == Some("length") => Err(BadOutput::new(
            "output truncated at max_tokens before the JSON was complete \
             (finish_reason=length)",
            text,
        )),
        None => Err(BadOutput::new("message content is not a JSON object", text)),
    }
}

/// Message content as text: a string, or the text parts of a content array.
fn message_text(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join(""),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Message;
    use serde_json::{Map, json};

    /// The body as `build_body` built it before it wrote bytes directly: a `Value` per call.
    /// The byte writer must produce the same JSON.
    fn value_body(req: &ChatRequest, model: &str, mode: StructuredMode, stream: bool) -> Value {
        let system = match mode {
            StructuredMode::JsonObject | StructuredMode::Prompt => req.prompt.system_with_schema(),
            StructuredMode::JsonSchema | StructuredMode::Tools => req.prompt.system().to_owned(),
        };
        let schema = req.prompt.schema();
        let mut messages = Vec::new();
        if !system.is_empty() {
            messages.push(json!({"role": "system", "content": system}));
        }
        messages.extend(
            req.messages
                .iter()
                .map(|m| json!({"role": m.role.as_str(), "content": m.content})),
        );
        let mut body = Map::new();
        body.insert("model".into(), json!(model));
        body.insert("messages".into(), Value::Array(messages));
        body.insert("stream".into(), json!(stream));
        if stream {
            body.insert("stream_options".into(), json!({"include_usage": true}));
        }
        if let Some(t) = req.temperature {
            body.insert(
                "temperature".into(),
                json!(crate::types::temperature_f64(t)),
            );
        }
        if let Some(n) = req.max_tokens {
            body.insert("max_tokens".into(), json!(n));
        }
        let name = req.prompt.tool_name();
        match mode {
            StructuredMode::JsonSchema => {
                body.insert(
                    "response_format".into(),
                    json!({
                        "type": "json_schema",
                        "json_schema": {"name": name, "strict": true, "schema": schema},
                    }),
                );
            }
            StructuredMode::JsonObject => {
                body.insert(
                    "response_format".into(),
                    json!({"type": "json_object", "schema": schema}),
                );
            }
            StructuredMode::Tools => {
                body.insert(
                    "tools".into(),
                    json!([{
                        "type": "function",
                        "function": {
                            "name": name,
                            "description": "Return the answer as the arguments of this function.",
                            "parameters": schema,
                        },
                    }]),
                );
                body.insert(
                    "tool_choice".into(),
                    json!({"type": "function", "function": {"name": name}}),
                );
            }
            StructuredMode::Prompt => {}
        }
        Value::Object(body)
    }

    fn body(req: &ChatRequest, model: &str, mode: StructuredMode) -> Value {
        serde_json::from_slice(&build_body(req, model, mode, false)).unwrap()
    }

    const MODES: [StructuredMode; 4] = [
        StructuredMode::JsonSchema,
        StructuredMode::JsonObject,
        StructuredMode::Tools,
        StructuredMode::Prompt,
    ];

    #[test]
    fn bodies_match_the_value_built_bodies() {
        let schema = json!({
            "type": "object",
            "properties": {"steps": {"type": "array", "maxItems": 50, "items": {"$ref": "#/$defs/s"}}},
            "$defs": {"s": {"description": "quotes \" and \\ and \u{1} and é"}},
        });
        let mut requests = vec![request()];
        let mut req = ChatRequest::new(
            "Line one\n\t\"quoted\" é \u{7f}\n\n",
            vec![
                Message::user("add \"2\" and 2\n"),
                Message::assistant("{\"steps\": []}"),
                Message::user("again"),
            ],
            "plan v2 (ünïcode)",
            schema.clone(),
        );
        req.temperature = Some(0.7);
        requests.push(req.clone());
        req.temperature = None;
        req.max_tokens = None;
        requests.push(req);
        requests.push(ChatRequest::new("", vec![Message::user("x")], "", schema));
        requests.push(ChatRequest::default());
        for req in &requests {
            for mode in MODES {
                for model in ["m", "org/model \"q\""] {
                    for stream in [false, true] {
                        let built: Value =
                            serde_json::from_slice(&build_body(req, model, mode, stream)).unwrap();
                        assert_eq!(
                            built,
                            value_body(req, model, mode, stream),
                            "{mode} {model} {stream} {req:?}"
                        );
                    }
                }
            }
        }
    }

    fn request() -> ChatRequest {
        let mut req = ChatRequest::new(
            "You plan.",
            vec![Message::user("add 2 and 2")],
            "plan",
            json!({"type": "object", "properties": {"steps": {"type": "array"}}}),
        );
        req.temperature = Some(0.0);
        req.max_tokens = Some(256);
        req
    }

    #[test]
    fn bodies_per_mode() {
        let req = request();
        let schema = req.prompt.schema();
        let b = body(&req, "m", StructuredMode::JsonSchema);
        assert_eq!(b["response_format"]["type"], "json_schema");
        assert_eq!(b["response_format"]["json_schema"]["name"], "plan");
        assert_eq!(b["response_format"]["json_schema"]["strict"], true);
        assert_eq!(b["response_format"]["json_schema"]["schema"], *schema);
        assert_eq!(b["messages"][0]["content"], "You plan.");
        assert_eq!(b["messages"][1]["role"], "user");
        assert_eq!(b["max_tokens"], 256);

        let b = body(&req, "m", StructuredMode::JsonObject);
        assert_eq!(b["response_format"]["type"], "json_object");
        assert_eq!(b["response_format"]["schema"], *schema);
        assert!(
            b["messages"][0]["content"]
                .as_str()
                .unwrap()
                .contains("JSON object")
        );

        let b = body(&req, "m", StructuredMode::Tools);
        assert_eq!(b["tools"][0]["function"]["name"], "plan");
        assert_eq!(b["tools"][0]["function"]["parameters"], *schema);
        assert_eq!(b["tool_choice"]["function"]["name"], "plan");
        assert!(b.get("response_format").is_none());

        let b = body(&req, "m", StructuredMode::Prompt);
        assert!(b.get("response_format").is_none());
        assert!(b.get("tools").is_none());
        assert!(
            b["messages"][0]["content"]
                .as_str()
                .unwrap()
                .contains("Answer with only a JSON object matching this schema")
        );
    }

    #[test]
    fn parses_content_and_tool_calls() {
        let body = json!({
            "model": "served",
            "choices": [{"message": {"content": "{\"a\": 1}"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3}
        })
        .to_string();
        let p = parse_response(&body, StructuredMode::JsonObject).unwrap();
        assert_eq!(p.value, json!({"a": 1}));
        assert_eq!(p.model.as_deref(), Some("served"));
        assert_eq!(p.usage.input_tokens, 10);
        assert_eq!(p.usage.output_tokens, 3);
        assert_eq!(p.finish_reason.as_deref(), Some("stop"));

        let body = json!({
            "choices": [{"message": {"content": null, "tool_calls": [
                {"type": "function", "function": {"name": "plan", "arguments": "{\"b\": 2}"}}
            ]}, "finish_reason": "tool_calls"}]
        })
        .to_string();
        let p = parse_response(&body, StructuredMode::Tools).unwrap();
        assert_eq!(p.value, json!({"b": 2}));
        assert_eq!(p.raw_text, "{\"b\": 2}");
        assert_eq!(p.usage, Usage::default());
    }

    #[test]
    fn bad_outputs_are_errors() {
        assert!(parse_response("not json", StructuredMode::JsonObject).is_err());
        assert!(parse_response("{\"choices\": []}", StructuredMode::JsonObject).is_err());
        let body = json!({"choices": [{"message": {"content": "hello"}}]}).to_string();
        assert!(parse_response(&body, StructuredMode::JsonObject).is_err());
        let body = json!({"choices": [{"message": {"content": null}}]}).to_string();
        let err = parse_response(&body, StructuredMode::Tools).unwrap_err();
        assert!(err.reason.contains("no tool call"), "{err:?}");
        let body =
            json!({"choices": [{"message": {"content": "{\"a\":"}, "finish_reason": "length"}]})
                .to_string();
        let err = parse_response(&body, StructuredMode::Prompt).unwrap_err();
        assert!(err.reason.contains("length"), "{err:?}");
        assert_eq!(err.text, "{\"a\":");
        let body =
            json!({"choices": [{"message": {"content": null, "refusal": "no"}}]}).to_string();
        assert!(parse_response(&body, StructuredMode::JsonSchema).is_err());
    }
}
