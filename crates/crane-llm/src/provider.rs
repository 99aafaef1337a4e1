//! [`Provider`]: the client for one configured model server. It owns one pooled
//! `reqwest::Client` (TCP_NODELAY, connect timeout), the circuit breaker and the remembered
//! structured mode, and runs one `chat` call as: breaker check → attempts (mode fallback on
//! rejection, retries with backoff on availability failures, all bounded by the deadline) →
//! decoded answer with usage and cost.
//!
//! [`Provider::chat_stream`] is the same call asking for a streamed answer (when the
//! provider's `stream` setting is on): the answer's text is handed to the caller as it arrives
//! and the answer object is still decided at the end, as for a plain response. A server that
//! ignores `stream` and answers with one JSON body is decoded as a plain answer. A failure
//! before any answer text arrived is retried like any other; once text has arrived it is not
//! (the caller may already have acted on it), and the error says so.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER,
};
use tokio::time::Instant;

use crate::anthropic;
use crate::breaker::{BreakerState, CircuitBreaker, Outcome};
use crate::config::{ApiKey, ProviderConfig, ProviderKind, StructuredMode};
use crate::error::{ErrorKind, LlmError, redact, snippet};
use crate::openai;
use crate::pricing::cost_usd;
use crate::retry::parse_retry_after;
use crate::stream::{Decoder, SseLines, StreamProblem};
use crate::types::{BadOutput, ChatRequest, ChatResponse, Parsed};

/// The caller's consumer of a streamed answer's text (see [`Provider::chat_stream`]).
pub type OnText<'a> = &'a mut (dyn FnMut(&str) + Send);

/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Hosted APIs that answer every keyless request with 401 (see [`Provider::missing_key_host`]).
const HOSTED_APIS: [&str; 8] = [
    "api.openai.com",
    "api.anthropic.com",
    "api.mistral.ai",
    "api.groq.com",
    "api.together.xyz",
    "api.deepseek.com",
    "api.fireworks.ai",
    "openrouter.ai",
];

/// Words in a 500 body that mean "this structured mode is not supported" rather than a crash.
const MODE_REJECTION_HINTS: [&str; 6] = [
    "response_format",
    "json_schema",
    "tool",
    "not supported",
    "unsupported",
    "grammar",
];

/// A client for one model server; cheap to share (`&self` everywhere, wrap it in an `Arc`).
pub struct Provider {
    config: ProviderConfig,
    modes: Vec<StructuredMode>,
    endpoint: String,
    /// `endpoint`, parsed once (parsing it per request cost more than building the body).
    url: reqwest::Url,
    headers: HeaderMap,
    client: reqwest::Client,
    /// Index into `modes` of the mode to start with (the first one that worked).
    mode_index: AtomicUsize,
    /// Whether the mode at `mode_index` has produced an answer at least once.
    mode_confirmed: AtomicBool,
    /// Shared by every [`Provider::with_model`] handle of the same server: a dead server opens
    /// one breaker, whichever model (planner variant) found out.
    breaker: Arc<CircuitBreaker>,
    /// Whether the "streams without usage" warning was logged (once per server).
    warned_stream_usage: Arc<AtomicBool>,
}

/// Whether a failed response means "the server does not support this structured mode".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModeRejection {
    No,
    Yes,
    /// A bare 500: a rejection only on the first request of a mode not yet known to work.
    IfUnconfirmed,
}

/// One failed HTTP attempt.
struct AttemptFailure {
    error: LlmError,
    retry_after: Option<Duration>,
    mode_rejection: ModeRejection,
    /// An availability failure a retry within this call is unlikely to fix (could not
    /// connect): counted by the breaker, not retried.
    final_for_call: bool,
}

impl AttemptFailure {
    fn plain(error: LlmError) -> Self {
        Self {
            error,
            retry_after: None,
            mode_rejection: ModeRejection::No,
            final_for_call: false,
        }
    }
}

impl Provider {
    /// Validates the configuration and builds the HTTP client. Fails with
    /// [`ErrorKind::Config`] for an empty name or model, a bad base URL, an invalid header or
    /// key, a zero request timeout, or no usable structured mode.
    pub fn new(mut config: ProviderConfig) -> Result<Self, LlmError> {
        let provider_name = if config.name.trim().is_empty() {
            "llm".to_owned()
        } else {
            config.name.clone()
        };
        let key = config.api_key.clone();
        let fail = |message: String| {
            LlmError::new(
                ErrorKind::Config,
                provider_name.clone(),
                redact(&message, key.as_ref()),
            )
        };
        if config.name.trim().is_empty() {
            return Err(fail("provider name must not be empty".to_owned()));
        }
        if config.model.trim().is_empty() {
            return Err(fail("model must not be empty".to_owned()));
        }
        if config.request_timeout.is_zero() {
            return Err(fail("request_timeout must be greater than zero".to_owned()));
        }

        let base_url = config.base_url.trim().trim_end_matches('/').to_owned();
        let url = reqwest::Url::parse(&base_url)
            .map_err(|e| fail(format!("invalid base_url {base_url:?}: {e}")))?;
        match url.scheme() {
            "http" => {}
            "https" if cfg!(feature = "tls") => {}
            "https" => {
                return Err(fail(format!(
                    "base_url {base_url:?} uses https, but crane-llm was built without its \
                     `tls` feature (plain http only)"
                )));
            }
            other => {
                return Err(fail(format!(
                    "base_url {base_url:?} must use http or https, not {other:?}"
                )));
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(fail(format!("base_url {base_url:?} has no host")));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(fail(format!(
                "base_url {base_url:?} must not have a query or fragment"
            )));
        }
        config.base_url = base_url;

        let modes = usable_modes(&config, &fail)?;
        config.modes = modes.clone();
        let headers = build_headers(&config).map_err(fail)?;
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .user_agent(concat!("crane-llm/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| fail(format!("cannot build the HTTP client: {e}")))?;
        let endpoint = match config.kind {
            ProviderKind::OpenAi => openai::endpoint(&config.base_url),
            ProviderKind::Anthropic => anthropic::endpoint(&config.base_url),
        };
        let url = reqwest::Url::parse(&endpoint)
            .map_err(|e| fail(format!("invalid endpoint {endpoint:?}: {e}")))?;
        let breaker = Arc::new(CircuitBreaker::new(
            config.name.clone(),
            config.breaker.clone(),
        ));
        Ok(Self {
            config,
            modes,
            endpoint,
            url,
            headers,
            client,
            mode_index: AtomicUsize::new(0),
            mode_confirmed: AtomicBool::new(false),
            breaker,
            warned_stream_usage: Arc::new(AtomicBool::new(false)),
        })
    }

    /// A handle on the same server that sends `model` by default: it shares this provider's
    /// connection pool and circuit breaker (availability is the server's, not the model's),
    /// and remembers its own structured mode (support can differ per model). Planner variants
    /// that name the same provider with different models use this, so a dead server opens one
    /// breaker and `crane_llm_circuit_breaker_state{provider}` has one writer.
    pub fn with_model(&self, model: &str) -> Result<Self, LlmError> {
        if model.trim().is_empty() {
            return Err(LlmError::new(
                ErrorKind::Config,
                self.config.name.clone(),
                "model must not be empty".to_owned(),
            ));
        }
        let mut config = self.config.clone();
        config.model = model.to_owned();
        Ok(Self {
            config,
            modes: self.modes.clone(),
            endpoint: self.endpoint.clone(),
            url: self.url.clone(),
            headers: self.headers.clone(),
            client: self.client.clone(),
            mode_index: AtomicUsize::new(0),
            mode_confirmed: AtomicBool::new(false),
            breaker: self.breaker.clone(),
            warned_stream_usage: self.warned_stream_usage.clone(),
        })
    }

    /// The host of a known hosted API (api.openai.com, api.anthropic.com, ...) this provider
    /// points at without an API key: its requests will be refused with 401 (an auth error).
    /// Not an error here: without network the calls fail fast and fall back, and a caller
    /// should say so loudly at start-up.
    pub fn missing_key_host(&self) -> Option<&str> {
        let host = self.url.host_str()?;
        let keyless = self.config.api_key.as_ref().is_none_or(ApiKey::is_empty);
        (keyless && HOSTED_APIS.contains(&host)).then_some(host)
    }

    /// The provider's configured name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The wire protocol.
    pub fn kind(&self) -> ProviderKind {
        self.config.kind
    }

    /// The default model.
    pub fn model(&self) -> &str {
        &self.config.model
    }

    /// The validated configuration (modes normalised, base URL without a trailing slash).
    pub fn config(&self) -> &ProviderConfig {
        &self.config
    }

    /// The full URL requests are sent to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The structured mode the next call starts with (the first one that worked so far).
    pub fn current_mode(&self) -> StructuredMode {
        self.mode_at(self.mode_index.load(Ordering::Acquire))
    }

    /// The circuit breaker's state.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// Sends one structured chat call and returns the parsed JSON object.
    ///
    /// Fails fast with [`ErrorKind::CircuitOpen`] while the breaker is open and with
    /// [`ErrorKind::Timeout`] when the deadline has already passed; otherwise retries
    /// availability failures within the deadline and falls back through the configured modes
    /// when the server rejects one.
    pub async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.chat_with(req, None).await
    }

    /// Like [`Provider::chat`], asking for a streamed answer when the provider's `stream`
    /// setting is on: `on_text` gets each piece of the answer's text as it arrives (message
    /// text, or the tool call's arguments in the `tools` mode), in order; their concatenation
    /// is the text the answer object is decoded from. A plain JSON answer (streaming off, or a
    /// server that ignores it) calls `on_text` never; [`ChatResponse::streamed`] tells which.
    /// Failures before the first piece are retried as usual; after it, never.
    pub async fn chat_stream(
        &self,
        req: &ChatRequest,
        on_text: OnText<'_>,
    ) -> Result<ChatResponse, LlmError> {
        self.chat_with(req, Some(on_text)).await
    }

    async fn chat_with(
        &self,
        req: &ChatRequest,
        on_text: Option<OnText<'_>>,
    ) -> Result<ChatResponse, LlmError> {
        let started = std::time::Instant::now();
        if req
            .deadline
            .is_some_and(|deadline| deadline <= Instant::now())
        {
            return Err(self.error(
                ErrorKind::Timeout,
                "the deadline passed before the request was sent",
            ));
        }
        let Some(permit) = self.breaker.try_acquire() else {
            return Err(self.error(
                ErrorKind::CircuitOpen,
                "circuit breaker is open after repeated availability failures; \
                 failing fast without calling the server",
            ));
        };
        let result = self.call(req, started, on_text).await;
        permit.record(match &result {
            Ok(_) => Outcome::Success,
            Err(e) if e.kind.is_availability() => Outcome::Failure,
            Err(_) => Outcome::Neutral,
        });
        result
    }

    async fn call(
        &self,
        req: &ChatRequest,
        started: std::time::Instant,
        mut on_text: Option<OnText<'_>>,
    ) -> Result<ChatResponse, LlmError> {
        let model = req
            .model
            .as_deref()
            .filter(|m| !m.trim().is_empty())
            .unwrap_or(&self.config.model);
        let last_mode = self.modes.len().saturating_sub(1);
        let start_index = self.mode_index.load(Ordering::Acquire).min(last_mode);
        let mut mode_index = start_index;
        let mut first_of_mode = true;
        let mut attempts = 0u32;
        let mut retries = 0u32;
        loop {
            let mode = self.mode_at(mode_index);
            let Some(timeout) = self.attempt_timeout(req.deadline) else {
                let error = self.error(ErrorKind::Timeout, "the deadline passed between attempts");
                return Err(with_attempts(error, attempts));
            };
            attempts += 1;
            let sent = self
                .send_once(req, model, mode, timeout, on_text.as_deref_mut())
                .await;
            let failure = match sent {
                Ok((parsed, streamed)) => {
                    self.remember_mode(start_index, mode_index);
                    let mut response = self.response(parsed, mode, model, attempts, started);
                    response.streamed = streamed;
                    return Ok(response);
                }
                Err(failure) => failure,
            };

            let rejected = match failure.mode_rejection {
                ModeRejection::Yes => true,
                ModeRejection::IfUnconfirmed => first_of_mode && !self.is_confirmed(mode_index),
                ModeRejection::No => false,
            };
            if rejected && mode_index < last_mode {
                tracing::debug!(
                    provider = %self.config.name,
                    mode = %mode,
                    next = %self.mode_at(mode_index + 1),
                    error = %failure.error,
                    "structured mode rejected by the server; trying the next mode"
                );
                mode_index += 1;
                first_of_mode = true;
                continue;
            }

            let mut error = failure.error;
            if !error.kind.is_retryable()
                || failure.final_for_call
                || retries >= self.config.retry.max_retries
            {
                return Err(with_attempts(error, attempts));
            }
            let (delay, from_server) = match failure.retry_after {
                Some(delay) => (delay, true),
                None => (self.config.retry.backoff(retries), false),
            };
            let give_up = match req.deadline {
                Some(deadline) => Instant::now()
                    .checked_add(delay)
                    .is_none_or(|wake| wake >= deadline),
                None => from_server && delay > self.config.request_timeout,
            };
            if give_up {
                let why = match (from_server, req.deadline.is_some()) {
                    (true, true) => format!(
                        "not retried: Retry-After {}s would pass the deadline",
                        delay.as_secs_f64()
                    ),
                    (true, false) => format!(
                        "not retried: Retry-After {}s exceeds the request timeout",
                        delay.as_secs_f64()
                    ),
                    (false, _) => {
                        "not retried: the next attempt would pass the deadline".to_owned()
                    }
                };
                error.message = format!("{}; {why}", error.message);
                return Err(with_attempts(error, attempts));
            }
            tracing::warn!(
                provider = %self.config.name,
                kind = error.kind.as_str(),
                status = error.status,
                attempt = attempts,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                error = %error,
                "LLM request failed; retrying"
            );
            tokio::time::sleep(delay).await;
            retries += 1;
            first_of_mode = false;
        }
    }

    /// One HTTP request in `mode`; streamed when `on_text` is given and streaming is on.
    /// Returns the answer and whether it arrived as a stream.
    async fn send_once<'f>(
        &self,
        req: &ChatRequest,
        model: &str,
        mode: StructuredMode,
        timeout: Duration,
        on_text: Option<&mut (dyn FnMut(&str) + Send + 'f)>,
    ) -> Result<(Parsed, bool), AttemptFailure> {
        let stream = on_text.is_some() && self.config.stream;
        let body = match self.config.kind {
            ProviderKind::OpenAi => openai::build_body(req, model, mode, stream),
            ProviderKind::Anthropic => anthropic::build_body(req, model, mode, stream),
        };
        let headers = if stream {
            let mut headers = self.headers.clone();
            headers.insert(
                ACCEPT,
                HeaderValue::from_static("text/event-stream, application/json"),
            );
            headers
        } else {
            self.headers.clone()
        };
        let mut builder = self
            .client
            .post(self.url.clone())
            .headers(headers)
            .timeout(timeout)
            .body(body);
        if let Some(traceparent) = req.traceparent.as_deref() {
            match HeaderValue::from_str(traceparent) {
                Ok(value) => builder = builder.header("traceparent", value),
                Err(_) => {
                    tracing::debug!(provider = %self.config.name, "ignoring a traceparent that is not a valid header value")
                }
            }
        }
        let response = builder
            .send()
            .await
            .map_err(|e| self.transport_failure(e, timeout))?;
        let status = response.status().as_u16();
        // `retry-after-ms` (OpenAI, Azure OpenAI) is the precise form; `Retry-After` the
        // standard one (seconds or an HTTP date).
        let headers = response.headers();
        let retry_after = headers
            .get("retry-after-ms")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok())
            .or_else(|| {
                headers
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()))
            });
        let event_stream = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim()
                    .to_ascii_lowercase()
                    .starts_with("text/event-stream")
            });
        if (200..300).contains(&status)
            && event_stream
            && let Some(on_text) = on_text.filter(|_| stream)
        {
            return self
                .read_stream(response, status, mode, timeout, on_text)
                .await
                .map(|parsed| (parsed, true));
        }
        let text = response
            .text()
            .await
            .map_err(|e| self.transport_failure(e, timeout))?;

        if (200..300).contains(&status) {
            let parsed = match self.config.kind {
                ProviderKind::OpenAi => openai::parse_response(&text, mode),
                ProviderKind::Anthropic => anthropic::parse_response(&text, mode),
            };
            return parsed
                .map(|parsed| (parsed, false))
                .map_err(|bad| self.bad_output(bad, mode, status));
        }
        Err(self.status_failure(status, &text, retry_after, mode))
    }

    /// An answer that is not usable (→ InvalidOutput), with a redacted snippet of it.
    fn bad_output(&self, bad: BadOutput, mode: StructuredMode, status: u16) -> AttemptFailure {
        let BadOutput { reason, text } = bad;
        let message = format!(
            "{reason} ({mode} mode): {}",
            snippet(&text, self.config.api_key.as_ref())
        );
        AttemptFailure::plain(
            self.error(ErrorKind::InvalidOutput, message)
                .with_status(status),
        )
    }

    /// Reads a `text/event-stream` answer, handing its text to `on_text` as it arrives.
    async fn read_stream<'f>(
        &self,
        mut response: reqwest::Response,
        status: u16,
        mode: StructuredMode,
        timeout: Duration,
        on_text: &mut (dyn FnMut(&str) + Send + 'f),
    ) -> Result<Parsed, AttemptFailure> {
        let mut sse = SseLines::default();
        let mut decoder = Decoder::new(self.config.kind, mode);
        let mut started = false;
        // After text has arrived a failure is final for the call: the caller may have acted.
        let mid_stream = |mut failure: AttemptFailure, started: bool| {
            if started {
                failure.final_for_call = true;
                failure.error.message = format!(
                    "{}; the answer had started streaming, so the request is not retried",
                    failure.error.message
                );
            }
            failure
        };
        while !decoder.is_done() {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => return Err(mid_stream(self.transport_failure(e, timeout), started)),
            };
            let events = sse.push(&chunk).map_err(|_| {
                let bad = BadOutput::new(
                    format!(
                        "a streamed line is longer than {} bytes",
                        crate::stream::MAX_LINE_BYTES
                    ),
                    "",
                );
                mid_stream(self.bad_output(bad, mode, status), started)
            })?;
            for data in events {
                self.stream_event(&mut decoder, &data, mode, status, &mut started, on_text)
                    .map_err(|failure| mid_stream(failure, started))?;
                if decoder.is_done() {
                    break;
                }
            }
        }
        if !decoder.is_done() {
            for data in sse.finish() {
                self.stream_event(&mut decoder, &data, mode, status, &mut started, on_text)
                    .map_err(|failure| mid_stream(failure, started))?;
            }
        }
        let parsed = decoder
            .finish()
            .map_err(|bad| self.bad_output(bad, mode, status))?;
        if parsed.usage == crate::types::Usage::default()
            && !self.warned_stream_usage.swap(true, Ordering::AcqRel)
        {
            tracing::warn!(
                provider = %self.config.name,
                "the server streams answers without token usage (it ignores \
                 stream_options.include_usage; llama-cpp-python does): usage and cost of its \
                 streamed answers are recorded as 0, so token and cost budgets do not see them; \
                 set stream = false for this provider where they matter"
            );
        }
        Ok(parsed)
    }

    /// Decodes one event and hands its text on.
    fn stream_event(
        &self,
        decoder: &mut Decoder,
        data: &str,
        mode: StructuredMode,
        status: u16,
        started: &mut bool,
        on_text: &mut (dyn FnMut(&str) + Send + '_),
    ) -> Result<(), AttemptFailure> {
        match decoder.event(data) {
            Ok(Some(text)) => {
                *started = true;
                on_text(&text);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(StreamProblem::Bad(bad)) => Err(self.bad_output(bad, mode, status)),
            Err(StreamProblem::ServerError(message)) => {
                let snip = snippet(&message, self.config.api_key.as_ref());
                Err(AttemptFailure::plain(
                    self.error(
                        ErrorKind::Server,
                        format!("the server reported an error in the stream ({mode} mode): {snip}"),
                    )
                    .with_status(status),
                ))
            }
        }
    }

    /// Classifies a non-2xx response.
    fn status_failure(
        &self,
        status: u16,
        body: &str,
        retry_after: Option<Duration>,
        mode: StructuredMode,
    ) -> AttemptFailure {
        let snip = snippet(body, self.config.api_key.as_ref());
        let (kind, message) = match status {
            401 | 403 => (
                ErrorKind::Auth,
                format!(
                    "authentication failed (HTTP {status}); check the API key configured for \
                     this provider: {snip}"
                ),
            ),
            408 => (
                ErrorKind::Timeout,
                format!("the server timed out the request (HTTP 408): {snip}"),
            ),
            429 => (
                ErrorKind::RateLimit,
                match retry_after {
                    Some(d) => format!(
                        "rate limited (HTTP 429, Retry-After {}s): {snip}",
                        d.as_secs_f64()
                    ),
                    None => format!("rate limited (HTTP 429): {snip}"),
                },
            ),
            404 => (
                ErrorKind::Config,
                format!(
                    "HTTP 404 from {}: check base_url and the model name: {snip}",
                    self.endpoint
                ),
            ),
            400..=499 => (
                ErrorKind::Config,
                format!("request rejected (HTTP {status}, {mode} mode): {snip}"),
            ),
            500..=599 => (
                ErrorKind::Server,
                format!("server error (HTTP {status}, {mode} mode): {snip}"),
            ),
            _ => (
                ErrorKind::Config,
                format!("unexpected HTTP status {status}: {snip}"),
            ),
        };
        let mode_rejection = match status {
            401 | 403 | 408 | 429 => ModeRejection::No,
            400..=499 | 501 => ModeRejection::Yes,
            500 => {
                let lower = body.to_ascii_lowercase();
                if MODE_REJECTION_HINTS.iter().any(|hint| lower.contains(hint)) {
                    ModeRejection::Yes
                } else {
                    ModeRejection::IfUnconfirmed
                }
            }
            _ => ModeRejection::No,
        };
        AttemptFailure {
            error: self.error(kind, message).with_status(status),
            retry_after,
            mode_rejection,
            final_for_call: false,
        }
    }

    /// Classifies a transport failure (no HTTP response).
    ///
    /// A failure to connect (refused, unreachable, a host that does not resolve, the connect
    /// timeout) is final for the call: nothing reached the server, and backing off a few
    /// hundred ms rarely brings it back, while every run would pay for the wait before falling
    /// back. It still counts toward the breaker, which then makes a dead provider free.
    fn transport_failure(&self, error: reqwest::Error, timeout: Duration) -> AttemptFailure {
        let connect_timeout = self.config.connect_timeout;
        if error.is_connect() {
            let timed_out = error.is_timeout();
            let chain = error_chain(error);
            let (kind, what) = if timed_out {
                (
                    ErrorKind::Timeout,
                    format!("no connection within {connect_timeout:?}"),
                )
            } else if chain.contains("dns error") {
                (ErrorKind::Network, "could not resolve the host".to_owned())
            } else {
                (ErrorKind::Network, "could not connect".to_owned())
            };
            return AttemptFailure {
                final_for_call: true,
                ..AttemptFailure::plain(self.error(
                    kind,
                    format!(
                        "{what} to {} (not retried; check base_url and the network): {chain}",
                        self.endpoint
                    ),
                ))
            };
        }
        let (kind, message) = if error.is_timeout() {
            (
                ErrorKind::Timeout,
                format!(
                    "no response from {} within {timeout:?}: {}",
                    self.endpoint,
                    error_chain(error)
                ),
            )
        } else if error.is_builder() {
            (
                ErrorKind::Config,
                format!("cannot build the request: {}", error_chain(error)),
            )
        } else {
            (
                ErrorKind::Network,
                format!(
                    "request to {} failed: {}",
                    self.endpoint,
                    error_chain(error)
                ),
            )
        };
        AttemptFailure::plain(self.error(kind, message))
    }

    /// The successful response: usage, cost, the reported model.
    fn response(
        &self,
        parsed: Parsed,
        mode: StructuredMode,
        requested_model: &str,
        attempts: u32,
        started: std::time::Instant,
    ) -> ChatResponse {
        let model = parsed
            .model
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| requested_model.to_owned());
        let cost = cost_usd(&self.config.pricing, &model, requested_model, &parsed.usage);
        let latency = started.elapsed();
        tracing::debug!(
            provider = %self.config.name,
            model = %model,
            mode = %mode,
            attempts,
            latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            input_tokens = parsed.usage.input_tokens,
            output_tokens = parsed.usage.output_tokens,
            "LLM call succeeded"
        );
        ChatResponse {
            value: parsed.value,
            raw_text: parsed.raw_text,
            mode,
            model,
            usage: parsed.usage,
            cost_usd: cost,
            finish_reason: parsed.finish_reason,
            attempts,
            latency,
            streamed: false,
        }
    }

    /// Records that `mode_index` worked; later calls start there. Logs a downgrade once.
    fn remember_mode(&self, start_index: usize, mode_index: usize) {
        if mode_index != start_index
            && self
                .mode_index
                .compare_exchange(start_index, mode_index, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            tracing::info!(
                provider = %self.config.name,
                rejected = %self.mode_at(start_index),
                mode = %self.mode_at(mode_index),
                "the server does not support the preferred structured-output mode; \
                 using the fallback mode from now on"
            );
        }
        if self.mode_index.load(Ordering::Acquire) == mode_index {
            self.mode_confirmed.store(true, Ordering::Release);
        }
    }

    fn is_confirmed(&self, mode_index: usize) -> bool {
        self.mode_confirmed.load(Ordering::Acquire)
            && self.mode_index.load(Ordering::Acquire) == mode_index
    }

    fn mode_at(&self, index: usize) -> StructuredMode {
        self.modes
            .get(index)
            .or_else(|| self.modes.last())
            .copied()
            .unwrap_or(StructuredMode::Prompt)
    }

    /// The timeout of the next request: the request timeout clipped to the deadline; `None`
    /// when the deadline has passed.
    fn attempt_timeout(&self, deadline: Option<Instant>) -> Option<Duration> {
        match deadline {
            None => Some(self.config.request_timeout),
            Some(deadline) => {
                let remaining = deadline.saturating_duration_since(Instant::now());
                (!remaining.is_zero()).then(|| remaining.min(self.config.request_timeout))
            }
        }
    }

    /// An error from this provider, with the key redacted from the message.
    fn error(&self, kind: ErrorKind, message: impl AsRef<str>) -> LlmError {
        LlmError::new(
            kind,
            self.config.name.clone(),
            redact(message.as_ref(), self.config.api_key.as_ref()),
        )
    }
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.config.name)
            .field("kind", &self.config.kind)
            .field("model", &self.config.model)
            .field(
                "endpoint",
                &redact(&self.endpoint, self.config.api_key.as_ref()),
            )
            .field("modes", &self.modes)
            .field("current_mode", &self.current_mode())
            .field("breaker", &self.breaker_state())
            .finish_non_exhaustive()
    }
}

/// The configured modes (or the kind's defaults), deduplicated, without the ones the protocol
/// cannot express.
fn usable_modes(
    config: &ProviderConfig,
    fail: &impl Fn(String) -> LlmError,
) -> Result<Vec<StructuredMode>, LlmError> {
    let requested = if config.modes.is_empty() {
        config.kind.default_modes()
    } else {
        config.modes.clone()
    };
    let mut modes = Vec::with_capacity(requested.len());
    for mode in requested {
        if !config.kind.supports(mode) {
            tracing::warn!(
                provider = %config.name,
                mode = %mode,
                kind = %config.kind,
                "structured mode not available for this provider kind; skipping it"
            );
        } else if !modes.contains(&mode) {
            modes.push(mode);
        }
    }
    if modes.is_empty() {
        return Err(fail(format!(
            "none of the configured structured modes is available for {} providers \
             (use tools or prompt)",
            config.kind
        )));
    }
    Ok(modes)
}

/// Content type, authentication, version and extra headers sent with every request (an extra
/// header may replace any of them). Secret values are marked sensitive so `Debug` of the
/// header map hides them.
fn build_headers(config: &ProviderConfig) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let key = config.api_key.as_ref().filter(|k| !k.is_empty());
    let bad_key = || "the API key contains characters not allowed in an HTTP header".to_owned();
    match config.kind {
        ProviderKind::OpenAi => {
            if let Some(key) = key {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose().trim()))
                    .map_err(|_| bad_key())?;
                value.set_sensitive(true);
                headers.insert(AUTHORIZATION, value);
            }
        }
        ProviderKind::Anthropic => {
            if let Some(key) = key {
                let mut value =
                    HeaderValue::from_str(key.expose().trim()).map_err(|_| bad_key())?;
                value.set_sensitive(true);
                headers.insert("x-api-key", value);
            }
            headers.insert(
                "anthropic-version",
                HeaderValue::from_static(anthropic::API_VERSION),
            );
        }
    }
    for (name, value) in &config.extra_headers {
        let header = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("invalid extra header name {name:?}"))?;
        let mut value = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("invalid value for extra header {name:?}"))?;
        value.set_sensitive(true);
        headers.insert(header, value);
    }
    Ok(headers)
}

/// The error and its sources on one line, without the URL (the caller names the endpoint).
fn error_chain(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut parts = vec![error.to_string()];
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// Notes the number of requests in the message when there was more than one.
fn with_attempts(mut error: LlmError, attempts: u32) -> LlmError {
    if attempts > 1 {
        error.message = format!("{} (after {attempts} attempts)", error.message);
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiKey;

    fn config(kind: ProviderKind, base: &str) -> ProviderConfig {
        ProviderConfig::new("p", kind, base, "m")
    }

    #[test]
    fn rejects_bad_configuration() {
        for base in ["not a url", "ftp://host/v1", "http://"] {
            let err = Provider::new(config(ProviderKind::OpenAi, base)).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Config, "{base}: {err}");
        }
        let mut c = config(ProviderKind::OpenAi, "http://127.0.0.1:1/v1");
        c.model = " ".into();
        assert_eq!(Provider::new(c).unwrap_err().kind, ErrorKind::Config);
        let mut c = config(ProviderKind::OpenAi, "http://127.0.0.1:1/v1");
        c.extra_headers.push(("bad header".into(), "v".into()));
        assert_eq!(Provider::new(c).unwrap_err().kind, ErrorKind::Config);
        let mut c = config(ProviderKind::Anthropic, "http://127.0.0.1:1");
        c.modes = vec![StructuredMode::JsonSchema];
        assert_eq!(Provider::new(c).unwrap_err().kind, ErrorKind::Config);
    }

    #[test]
    fn normalises_modes_and_urls() {
        let mut c = config(ProviderKind::Anthropic, "http://127.0.0.1:1/");
        c.modes = vec![
            StructuredMode::JsonObject,
            StructuredMode::Prompt,
            StructuredMode::Prompt,
        ];
        let p = Provider::new(c).unwrap();
        assert_eq!(p.config().modes, vec![StructuredMode::Prompt]);
        assert_eq!(p.endpoint(), "http://127.0.0.1:1/v1/messages");
        assert_eq!(p.current_mode(), StructuredMode::Prompt);

        let mut c = config(ProviderKind::OpenAi, "http://127.0.0.1:1/v1/");
        c.modes.clear();
        let p = Provider::new(c).unwrap();
        assert_eq!(p.config().modes, ProviderKind::OpenAi.default_modes());
        assert_eq!(p.endpoint(), "http://127.0.0.1:1/v1/chat/completions");
        assert_eq!(p.breaker_state(), BreakerState::Closed);
    }

    #[test]
    fn hosted_apis_without_a_key_are_reported() {
        for (kind, base, host) in [
            // http: this crate's tests build without TLS; the check is on the host.
            (
                ProviderKind::OpenAi,
                "http://api.openai.com/v1",
                "api.openai.com",
            ),
            (
                ProviderKind::Anthropic,
                "http://api.anthropic.com",
                "api.anthropic.com",
            ),
        ] {
            let mut c = config(kind, base);
            c.api_key = None;
            let p = Provider::new(c.clone()).unwrap();
            assert_eq!(p.missing_key_host(), Some(host));
            assert_eq!(p.with_model("m2").unwrap().missing_key_host(), Some(host));
            c.api_key = Some(ApiKey::new(""));
            assert_eq!(
                Provider::new(c.clone()).unwrap().missing_key_host(),
                Some(host)
            );
            c.api_key = Some(ApiKey::new("sk-1"));
            assert_eq!(Provider::new(c).unwrap().missing_key_host(), None);
        }
        // A local server needs none.
        let mut c = config(ProviderKind::OpenAi, "http://127.0.0.1:8080/v1");
        c.api_key = None;
        assert_eq!(Provider::new(c).unwrap().missing_key_host(), None);
    }

    #[test]
    fn key_never_shows_in_debug_or_config_errors() {
        let key = "sk-top-secret-42";
        let mut c = config(
            ProviderKind::OpenAi,
            "http://127.0.0.1:1/sk-top-secret-42/v1",
        );
        c.api_key = Some(ApiKey::new(key));
        let p = Provider::new(c.clone()).unwrap();
        assert!(!format!("{p:?}").contains(key));
        assert!(!format!("{:?}", p.config()).contains(key));
        assert!(!format!("{:?}", p.headers).contains(key));
        c.base_url = format!("http://127.0.0.1:1/v1?key={key}");
        let err = Provider::new(c.clone()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Config);
        assert!(!format!("{err:?}").contains(key));
        c.base_url = format!("gopher://{key}");
        let err = Provider::new(c).unwrap_err();
        assert!(!err.to_string().contains(key), "{err}");
        assert!(!format!("{err:?}").contains(key));
    }

    #[test]
    fn provider_and_chat_future_are_send_and_sync() {
        fn send_sync<T: Send + Sync>(_: &T) {}
        fn send<T: Send>(_: T) {}
        let p = Provider::new(config(ProviderKind::OpenAi, "http://127.0.0.1:1/v1")).unwrap();
        send_sync(&p);
        let req = ChatRequest::default();
        send(p.chat(&req));
    }

    #[test]
    fn https_needs_the_tls_feature() {
        let result = Provider::new(config(ProviderKind::Anthropic, "https://api.anthropic.com"));
        assert_eq!(result.is_ok(), cfg!(feature = "tls"));
    }
}
