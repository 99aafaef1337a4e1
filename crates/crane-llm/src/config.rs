//! Provider configuration: which protocol a provider speaks ([`ProviderKind`]), how structured
//! output is requested ([`StructuredMode`]), the API key wrapper that never prints itself
//! ([`ApiKey`]) and the full [`ProviderConfig`] with its defaults.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::breaker::BreakerConfig;
use crate::pricing::Pricing;
use crate::retry::RetryConfig;

/// The wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProviderKind {
    /// Any OpenAI-compatible Chat Completions server (OpenAI, vLLM, Ollama, llama.cpp, LiteLLM...).
    #[serde(rename = "openai")]
    OpenAi,
    /// The Anthropic Messages API.
    #[serde(rename = "anthropic")]
    Anthropic,
}

impl ProviderKind {
    /// The configuration spelling: `"openai"` or `"anthropic"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        }
    }

    /// The structured-output modes tried in order when none are configured.
    pub fn default_modes(self) -> Vec<StructuredMode> {
        match self {
            Self::OpenAi => vec![
                StructuredMode::JsonSchema,
                StructuredMode::JsonObject,
                StructuredMode::Tools,
                StructuredMode::Prompt,
            ],
            Self::Anthropic => vec![StructuredMode::Tools, StructuredMode::Prompt],
        }
    }

    /// Whether this protocol has a way to express `mode` (Anthropic has no `response_format`).
    pub fn supports(self, mode: StructuredMode) -> bool {
        match self {
            Self::OpenAi => true,
            Self::Anthropic => matches!(mode, StructuredMode::Tools | StructuredMode::Prompt),
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "openai" | "openai-compatible" | "openai_compatible" => Ok(Self::OpenAi),
            "anthropic" => Ok(Self::Anthropic),
            other => Err(format!(
                "unknown LLM provider kind {other:?} (expected \"openai\" or \"anthropic\")"
            )),
        }
    }
}

/// How the answer's JSON shape is requested from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StructuredMode {
    /// `response_format: {"type": "json_schema", ...}` (OpenAI structured outputs, vLLM).
    JsonSchema,
    /// `response_format: {"type": "json_object", "schema": ...}` (llama.cpp enforces the schema by
    /// grammar; OpenAI only guarantees "some JSON object", so the schema also goes in the prompt).
    JsonObject,
    /// One forced function/tool call whose parameters are the schema.
    Tools,
    /// No server support: the schema is described in the system prompt and the JSON is extracted
    /// tolerantly from the text.
    Prompt,
}

impl StructuredMode {
    /// The configuration spelling: `"json_schema"`, `"json_object"`, `"tools"` or `"prompt"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::JsonSchema => "json_schema",
            Self::JsonObject => "json_object",
            Self::Tools => "tools",
            Self::Prompt => "prompt",
        }
    }
}

impl fmt::Display for StructuredMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StructuredMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json_schema" => Ok(Self::JsonSchema),
            "json_object" => Ok(Self::JsonObject),
            "tools" | "tool" => Ok(Self::Tools),
            "prompt" => Ok(Self::Prompt),
            other => Err(format!(
                "unknown structured mode {other:?} (expected json_schema, json_object, tools or prompt)"
            )),
        }
    }
}

/// An API key. `Debug` and `Display` print `***`; only [`ApiKey::expose`] reveals it, and the
/// provider uses that solely to build the authentication header.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself, for building the authentication header. Never log or format it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True for an empty (or all-whitespace) key, which the provider treats as "no key".
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Everything one provider needs. Build it with [`ProviderConfig::new`] and adjust the public
/// fields; `Debug` redacts the API key and the values of `extra_headers`.
#[derive(Clone)]
pub struct ProviderConfig {
    /// Name used in errors, logs and metrics (e.g. `"local-llama"`).
    pub name: String,
    /// Wire protocol.
    pub kind: ProviderKind,
    /// OpenAI-compatible: `http://host:port/v1` (requests go to `{base_url}/chat/completions`).
    /// Anthropic: `https://api.anthropic.com` (requests go to `{base_url}/v1/messages`).
    pub base_url: String,
    /// Sent as `Authorization: Bearer` (OpenAI) or `x-api-key` (Anthropic) when set.
    pub api_key: Option<ApiKey>,
    /// Default model; [`crate::ChatRequest::model`] overrides it per request.
    pub model: String,
    /// Structured-output modes tried in order; empty means [`ProviderKind::default_modes`].
    pub modes: Vec<StructuredMode>,
    /// Upper bound of one HTTP request (clipped to the request's deadline). Default 30 s.
    pub request_timeout: Duration,
    /// TCP connect timeout. Default 2 s.
    pub connect_timeout: Duration,
    /// Retry policy for availability failures.
    pub retry: RetryConfig,
    /// Circuit breaker policy.
    pub breaker: BreakerConfig,
    /// Prices by model name (looked up by the response model, then the requested model).
    pub pricing: HashMap<String, Pricing>,
    /// Extra headers sent with every request (e.g. an organisation id or a gateway key).
    pub extra_headers: Vec<(String, String)>,
    /// Ask for a streamed answer (server-sent events) when the caller consumes the text as it
    /// arrives ([`crate::Provider::chat_stream`]). Default on; a server that ignores it and
    /// answers with one JSON body works either way.
    pub stream: bool,
}

impl ProviderConfig {
    /// A configuration with the defaults: modes per kind, 30 s request timeout, 2 s connect
    /// timeout, 2 retries, the default breaker, no pricing, no key, streaming on.
    pub fn new(
        name: impl Into<String>,
        kind: ProviderKind,
        base_url: impl Into<String>,
        model: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            kind,
            base_url: base_url.into(),
            api_key: None,
            model: model.into(),
            modes: kind.default_modes(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(2),
            retry: RetryConfig::default(),
            breaker: BreakerConfig::default(),
            pricing: HashMap::new(),
            extra_headers: Vec::new(),
            stream: true,
        }
    }

    /// Sets the API key (an empty key counts as none).
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(ApiKey::new(key));
        self
    }
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .extra_headers
            .iter()
            .map(|(name, _)| (name.as_str(), "***"))
            .collect();
        f.debug_struct("ProviderConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field(
                "base_url",
                &crate::error::redact(&self.base_url, self.api_key.as_ref()),
            )
            .field("api_key", &self.api_key)
            .field("model", &self.model)
            .field("modes", &self.modes)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry", &self.retry)
            .field("breaker", &self.breaker)
            .field("pricing", &self.pricing)
            .field("extra_headers", &headers)
            .field("stream", &self.stream)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-very-secret-123";

    #[test]
    fn api_key_never_prints_itself() {
        let key = ApiKey::new(KEY);
        assert_eq!(format!("{key:?}"), "***");
        assert_eq!(format!("{key}"), "***");
        assert_eq!(key.expose(), KEY);
    }

    #[test]
    fn config_debug_redacts_key_and_header_values() {
        let mut config =
            ProviderConfig::new("p", ProviderKind::OpenAi, "http://x/v1", "m").with_api_key(KEY);
        config
            .extra_headers
            .push(("x-gateway-key".into(), "gw-secret-999".into()));
        let debug = format!("{config:?}");
        assert!(!debug.contains(KEY), "{debug}");
        assert!(!debug.contains("gw-secret-999"), "{debug}");
        assert!(debug.contains("x-gateway-key"));
        assert!(debug.contains("***"));
        let pretty = format!("{config:#?}");
        assert!(!pretty.contains(KEY));
    }

    #[test]
    fn kinds_and_modes_parse_and_serialize() {
        assert_eq!(
            "openai".parse::<ProviderKind>().unwrap(),
            ProviderKind::OpenAi
        );
        assert_eq!(
            "Anthropic".parse::<ProviderKind>().unwrap(),
            ProviderKind::Anthropic
        );
        assert!("gemini".parse::<ProviderKind>().is_err());
        assert_eq!(
            serde_json::to_string(&ProviderKind::OpenAi).unwrap(),
            "\"openai\""
        );
        for mode in ProviderKind::OpenAi.default_modes() {
            let json = serde_json::to_string(&mode).unwrap();
            assert_eq!(json, format!("\"{}\"", mode.as_str()));
            assert_eq!(mode.as_str().parse::<StructuredMode>().unwrap(), mode);
            let back: StructuredMode = serde_json::from_str(&json).unwrap();
            assert_eq!(back, mode);
        }
        assert_eq!(
            ProviderKind::Anthropic.default_modes(),
            vec![StructuredMode::Tools, StructuredMode::Prompt]
        );
        let key: ApiKey = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(key.expose(), "abc");
    }
}
