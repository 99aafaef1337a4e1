//! Request and response types of one structured chat call ([`ChatRequest`], [`ChatResponse`],
//! [`Usage`]), plus the protocol-neutral pieces both wire formats share (the schema instruction
//! for prompt-based modes, the sanitised tool name, the parsed answer).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::StructuredMode;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The user (or the planner speaking for it, e.g. a repair prompt).
    User,
    /// An earlier model answer (few-shot examples, repair rounds).
    Assistant,
}

impl Role {
    /// `"user"` or `"assistant"`, as both APIs spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }
}

/// One conversation turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Author.
    pub role: Role,
    /// Text.
    pub content: String,
}

impl Message {
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// The fixed part of structured chat calls: the system prompt and the answer's JSON schema.
///
/// Build one per planner and share it (`Arc`) between requests: the JSON text each wire format
/// sends for it (the system prompt as a JSON string, with or without the schema instruction,
/// and the serialised schema) is computed on first use and reused by every later request, so a
/// call copies bytes instead of cloning, rebuilding and re-escaping a `serde_json::Value` tree
/// and a multi-kilobyte prompt.
#[derive(Debug, Default)]
pub struct ChatPrompt {
    system: String,
    schema_name: String,
    schema: Value,
    tool_name: String,
    wire: WireText,
}

/// Lazily serialised fragments of a [`ChatPrompt`] (JSON text, ready to copy into a body).
#[derive(Debug, Default)]
struct WireText {
    system: OnceLock<String>,
    system_with_schema: OnceLock<String>,
    schema: OnceLock<String>,
}

impl ChatPrompt {
    /// A system prompt and the schema the answer must match. `schema_name` names the answer
    /// shape (used as the tool / json_schema name; sanitised to `[A-Za-z0-9_-]{1,64}`).
    pub fn new(system: impl Into<String>, schema_name: impl Into<String>, schema: Value) -> Self {
        let schema_name = schema_name.into();
        Self {
            system: system.into(),
            tool_name: sanitise_tool_name(&schema_name),
            schema_name,
            schema,
            wire: WireText::default(),
        }
    }

    /// The system prompt.
    pub fn system(&self) -> &str {
        &self.system
    }

    /// The answer shape's name as given.
    pub fn schema_name(&self) -> &str {
        &self.schema_name
    }

    /// The answer's JSON schema.
    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// The system prompt followed by the schema instruction used by the prompt-based modes.
    pub(crate) fn system_with_schema(&self) -> String {
        let instruction = format!(
            "Answer with only a JSON object matching this schema:\n{}",
            self.schema_json()
        );
        if self.system.trim().is_empty() {
            instruction
        } else {
            format!("{}\n\n{instruction}", self.system.trim_end())
        }
    }

    /// `schema_name` reduced to what every function-calling API accepts: `[A-Za-z0-9_-]{1,64}`.
    pub(crate) fn tool_name(&self) -> &str {
        &self.tool_name
    }

    /// The schema as compact JSON.
    pub(crate) fn schema_json(&self) -> &str {
        self.wire
            .schema
            .get_or_init(|| serde_json::to_string(&self.schema).unwrap_or_else(|_| "{}".to_owned()))
    }

    /// The system prompt as a JSON string literal; `None` when it is empty.
    pub(crate) fn system_json(&self) -> Option<&str> {
        (!self.system.is_empty()).then(|| {
            self.wire
                .system
                .get_or_init(|| json_string(&self.system))
                .as_str()
        })
    }

    /// [`Self::system_with_schema`] as a JSON string literal (never empty).
    pub(crate) fn system_with_schema_json(&self) -> &str {
        self.wire
            .system_with_schema
            .get_or_init(|| json_string(&self.system_with_schema()))
    }
}

/// A string as a JSON string literal (quotes and escapes included).
fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

fn sanitise_tool_name(schema_name: &str) -> String {
    let name: String = schema_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() {
        "answer".to_owned()
    } else {
        name
    }
}

/// `t` as the f64 with the same shortest decimal form (0.7f32 → 0.7, not 0.699999988079071):
/// what a user wrote in the configuration is what goes on the wire and on spans.
pub fn temperature_f64(t: f32) -> f64 {
    t.to_string().parse().unwrap_or(f64::from(t))
}

/// One structured chat call: the answer must be a JSON object matching the prompt's schema.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    /// System prompt and answer schema, shared between calls.
    pub prompt: Arc<ChatPrompt>,
    /// Conversation (the last one is normally a user message).
    pub messages: Vec<Message>,
    /// Overrides the provider's default model (model routing).
    pub model: Option<String>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Output token limit (Anthropic requires one: 1024 when unset).
    pub max_tokens: Option<u32>,
    /// Retries never go past it; each request's timeout is clipped to it.
    pub deadline: Option<tokio::time::Instant>,
    /// W3C trace context, sent as the `traceparent` header when set.
    pub traceparent: Option<String>,
}

impl ChatRequest {
    /// A request with the given prompt, conversation and answer schema; other fields default.
    pub fn new(
        system: impl Into<String>,
        messages: Vec<Message>,
        schema_name: impl Into<String>,
        schema: Value,
    ) -> Self {
        Self::with_prompt(
            Arc::new(ChatPrompt::new(system, schema_name, schema)),
            messages,
        )
    }

    /// A request with a shared prompt and the given conversation; other fields default.
    pub fn with_prompt(prompt: Arc<ChatPrompt>, messages: Vec<Message>) -> Self {
        Self {
            prompt,
            messages,
            ..Self::default()
        }
    }
}

/// Tokens billed for one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
}

impl Usage {
    /// Input plus output tokens.
    pub fn total(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// A successful structured answer.
#[derive(Debug, Clone)]
pub struct ChatResponse {
    /// The parsed JSON answer (always an object).
    pub value: Value,
    /// What the model returned (message text or tool arguments), for repair prompts and debugging.
    pub raw_text: String,
    /// The structured mode that produced it.
    pub mode: StructuredMode,
    /// Model as reported by the server (falls back to the requested model).
    pub model: String,
    /// Tokens billed for the successful request.
    pub usage: Usage,
    /// Cost in USD from the provider's pricing table; `None` when the model is not priced.
    pub cost_usd: Option<f64>,
    /// Why generation stopped (`stop`, `length`, `tool_calls`, `end_turn`, `tool_use`, ...).
    pub finish_reason: Option<String>,
    /// HTTP requests sent, including retries and mode fallbacks.
    pub attempts: u32,
    /// Wall time of the whole call, retries included.
    pub latency: Duration,
    /// Whether the answer arrived as a stream (server-sent events) rather than one JSON body.
    pub streamed: bool,
}

/// A successful response body decoded by one of the protocol modules.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub value: Value,
    pub raw_text: String,
    pub model: Option<String>,
    pub usage: Usage,
    pub finish_reason: Option<String>,
}

/// Why a 2xx body is not a usable answer, with the text to quote (the content, or the body).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BadOutput {
    pub reason: String,
    pub text: String,
}

impl BadOutput {
    pub(crate) fn new(reason: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            text: text.into(),
        }
    }
}

/// Interprets a tool call's arguments: an object as is, or a JSON string holding one (parsed
/// tolerantly). Returns the answer and its raw text.
pub(crate) fn arguments_object(arguments: &Value) -> Option<(Value, String)> {
    match arguments {
        Value::Object(_) => Some((arguments.clone(), arguments.to_string())),
        Value::String(text) => crate::extract::extract_json(text).map(|v| (v, text.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tool_name_is_sanitised() {
        let name = |n: &str| ChatPrompt::new("", n, json!({})).tool_name().to_owned();
        assert_eq!(name("plan v1.2"), "plan_v1_2");
        assert_eq!(name(""), "answer");
        assert_eq!(name(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn schema_instruction_is_appended() {
        let prompt = ChatPrompt::new("You plan.", "plan", json!({"type": "object"}));
        let system = prompt.system_with_schema();
        assert!(system.starts_with("You plan.\n\n"));
        assert!(system.contains("Answer with only a JSON object matching this schema"));
        assert!(system.contains("{\"type\":\"object\"}"));
        let wire: String = serde_json::from_str(prompt.system_with_schema_json()).unwrap();
        assert_eq!(wire, system);
        assert_eq!(prompt.system_json(), Some("\"You plan.\""));
        assert_eq!(ChatPrompt::new("", "plan", json!({})).system_json(), None);
    }

    #[test]
    fn arguments_accept_string_or_object() {
        let (v, raw) = arguments_object(&json!("{\"a\": 1}")).unwrap();
        assert_eq!(v, json!({"a": 1}));
        assert_eq!(raw, "{\"a\": 1}");
        let (v, _) = arguments_object(&json!({"b": 2})).unwrap();
        assert_eq!(v, json!({"b": 2}));
        assert!(arguments_object(&json!("nope")).is_none());
        assert!(arguments_object(&json!(3)).is_none());
    }
}

#[cfg(test)]
mod temperature_tests {
    use super::temperature_f64;

    #[test]
    fn temperatures_keep_their_decimal_form() {
        assert_eq!(temperature_f64(0.7), 0.7);
        assert_eq!(temperature_f64(0.0), 0.0);
        assert_eq!(temperature_f64(1.3), 1.3);
        assert_eq!(serde_json::json!(temperature_f64(0.2)).to_string(), "0.2");
    }
}
