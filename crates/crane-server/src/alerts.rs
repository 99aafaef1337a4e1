//! Budget alerts over a webhook (`[alerts] webhook_url`): every threshold crossing
//! ([`BudgetAlert`]) is POSTed as its JSON, whose `text` field makes it a Slack (and Mattermost,
//! Teams workflow, ...) incoming-webhook message as is.
//!
//! Never blocks, slows or fails a run: [`Webhook::notify`] only `try_send`s into a bounded queue
//! (full: the alert is dropped, logged and counted) and returns. One background task sends the
//! alerts in order; connection errors, timeouts, `429` and `5xx` answers are retried with
//! exponential backoff (full jitter, a `Retry-After` within the cap is honoured) up to
//! [`WebhookConfig::retry`]'s attempts; other answers are not retried. [`Webhook::shutdown`]
//! sends what is queued within a bound. The URL (a secret for Slack) is never logged, only its
//! host.
//!
//! Delivery is at most once per threshold: the threshold is marked in the store before it is
//! sent, so a crash between the two loses that one notification rather than repeating it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crane_core::budgets::{AlertSink, BudgetAlert};
use crane_core::runtime::RetryPolicy;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Why the webhook sender could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("could not build the HTTP client for the alert webhook: {0}")]
    Client(#[from] reqwest::Error),
}

/// How alerts are sent.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: String,
    /// Longest one POST may take.
    pub timeout: Duration,
    /// Attempts per alert and the backoff between them.
    pub retry: RetryPolicy,
    /// Alerts waiting to be sent before new ones are dropped.
    pub queue: usize,
}

impl WebhookConfig {
    /// Defaults: 10 s per POST, 6 attempts 1 s … 60 s apart, 1024 queued.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            timeout: Duration::from_secs(10),
            retry: RetryPolicy {
                max_attempts: 6,
                base_delay: Duration::from_secs(1),
                max_delay: Duration::from_secs(60),
            },
            queue: 1024,
        }
    }
}

/// The webhook sender: an [`AlertSink`] with a background task.
pub struct Webhook {
    tx: Mutex<Option<mpsc::Sender<BudgetAlert>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

fn counter(result: &'static str) -> metrics::Counter {
    metrics::counter!("crane_budget_alerts_total", "result" => result)
}

/// The URL's host, for logs (the path of a Slack webhook is its secret).
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority.rsplit('@').next().unwrap_or(authority)
}

impl Webhook {
    /// Starts the background sender (needs a tokio runtime).
    pub fn start(config: WebhookConfig) -> Result<Arc<Self>, WebhookError> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .build()?;
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        tracing::info!(host = host_of(&config.url), "budget alerts go to a webhook");
        let task = tokio::spawn(send_loop(client, config, rx));
        Ok(Arc::new(Self {
            tx: Mutex::new(Some(tx)),
            task: Mutex::new(Some(task)),
        }))
    }

    /// Stops taking alerts and sends the queued ones, for at most `within`.
    pub async fn shutdown(&self, within: Duration) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(mut task) = task
            && tokio::time::timeout(within, &mut task).await.is_err()
        {
            task.abort();
            tracing::warn!("budget alerts still unsent at shutdown were dropped");
        }
    }
}

impl AlertSink for Webhook {
    fn notify(&self, alert: &BudgetAlert) {
        let sent = self
            .tx
            .lock()
            .ok()
            .and_then(|tx| tx.as_ref().map(|tx| tx.try_send(alert.clone()).is_ok()));
        match sent {
            Some(true) => {}
            _ => {
                counter("dropped").increment(1);
                tracing::warn!(tenant = %alert.tenant, window = alert.window.as_str(), threshold = alert.threshold, "budget alert dropped: the webhook queue is full or closed");
            }
        }
    }
}

async fn send_loop(
    client: reqwest::Client,
    config: WebhookConfig,
    mut rx: mpsc::Receiver<BudgetAlert>,
) {
    while let Some(alert) = rx.recv().await {
        let delivered = deliver(&client, &config, &alert).await;
        counter(if delivered { "sent" } else { "failed" }).increment(1);
    }
}

/// Sends one alert with retries; true when the webhook took it (2xx).
async fn deliver(client: &reqwest::Client, config: &WebhookConfig, alert: &BudgetAlert) -> bool {
    let host = host_of(&config.url);
    let attempts = config.retry.max_attempts.max(1);
    for attempt in 1..=attempts {
        let answer = client
            .post(&config.url)
            .json(alert)
            .timeout(config.timeout)
            .send()
            .await;
        let (why, retry_after) = match answer {
            Ok(r) if r.status().is_success() => {
                tracing::debug!(host, tenant = %alert.tenant, threshold = alert.threshold, "budget alert sent");
                return true;
            }
            Ok(r)
                if r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS
                    || r.status().is_server_error() =>
            {
                let retry_after = r
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                (format!("answered {}", r.status()), retry_after)
            }
            Ok(r) => {
                tracing::warn!(host, status = r.status().as_u16(), tenant = %alert.tenant, threshold = alert.threshold, "the alert webhook refused a budget alert; not retried");
                return false;
            }
            // Without the URL: reqwest's error text includes it.
            Err(e) => (
                if e.is_timeout() {
                    "timed out".to_owned()
                } else if e.is_connect() {
                    "could not connect".to_owned()
                } else {
                    "request failed".to_owned()
                },
                None,
            ),
        };
        if attempt == attempts {
            tracing::warn!(host, attempts, tenant = %alert.tenant, threshold = alert.threshold, last = %why, "gave up sending a budget alert to the webhook");
            return false;
        }
        let delay = retry_after
            .filter(|d| *d <= config.retry.max_delay)
            .unwrap_or_else(|| config.retry.backoff(attempt));
        tracing::debug!(host, attempt, %why, delay_ms = delay.as_millis() as u64, "budget alert not delivered; retrying");
        tokio::time::sleep(delay).await;
    }
    false
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Json;
    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::routing::post;
    use crane_core::budgets::{OnExhausted, Window};
    use serde_json::Value;

    use super::*;

    fn alert(threshold: u8) -> BudgetAlert {
        BudgetAlert {
            tenant: "acme".into(),
            window: Window::Day,
            threshold,
            used_usd: 0.5,
            max_usd: Some(1.0),
            used_tokens: 480,
            max_tokens: Some(500),
            ratio: 0.96,
            exhausted: false,
            on_exhausted: OnExhausted::RuleOnly,
            period_start: "2026-05-01T00:00:00Z".into(),
            resets_at: "2026-05-02T00:00:00Z".into(),
            text: "crane: tenant acme crossed 80%".into(),
        }
    }

    #[derive(Clone, Default)]
    struct Receiver {
        /// Requests answered 500 before the first success.
        fail_first: usize,
        seen: Arc<AtomicUsize>,
        bodies: Arc<Mutex<Vec<Value>>>,
        got: Arc<tokio::sync::Notify>,
    }

    async fn hook(State(r): State<Receiver>, Json(body): Json<Value>) -> StatusCode {
        let n = r.seen.fetch_add(1, Ordering::SeqCst);
        if n < r.fail_first {
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
        r.bodies.lock().unwrap().push(body);
        r.got.notify_waiters();
        StatusCode::OK
    }

    async fn receiver(fail_first: usize) -> (String, Receiver) {
        let r = Receiver {
            fail_first,
            ..Receiver::default()
        };
        let app = axum::Router::new()
            .route("/hook/secret-path", post(hook))
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/hook/secret-path"), r)
    }

    fn fast(url: &str) -> WebhookConfig {
        WebhookConfig {
            retry: RetryPolicy {
                max_attempts: 4,
                base_delay: Duration::from_millis(5),
                max_delay: Duration::from_millis(20),
            },
            ..WebhookConfig::new(url)
        }
    }

    /// Waits (bounded) until the receiver has `n` bodies.
    async fn bodies(r: &Receiver, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = r.got.notified();
            let have = r.bodies.lock().unwrap().clone();
            if have.len() >= n {
                return have;
            }
            assert!(
                tokio::time::timeout_at(deadline, got).await.is_ok(),
                "only {} of {n} alerts arrived",
                have.len()
            );
        }
    }

    #[tokio::test]
    async fn alerts_are_posted_in_order_and_retried_after_server_errors() {
        let (url, r) = receiver(2).await;
        let webhook = Webhook::start(fast(&url)).unwrap();
        webhook.notify(&alert(80));
        webhook.notify(&alert(90));
        let got = bodies(&r, 2).await;
        assert_eq!(got[0]["threshold"], 80);
        assert_eq!(got[1]["threshold"], 90);
        assert_eq!(r.seen.load(Ordering::SeqCst), 4, "two 500s, then both");
        // The payload is the alert as JSON, with Slack's `text`.
        for key in [
            "tenant",
            "window",
            "threshold",
            "used_usd",
            "max_usd",
            "used_tokens",
            "max_tokens",
            "ratio",
            "period_start",
            "resets_at",
            "text",
        ] {
            assert!(got[0].get(key).is_some(), "no {key} in {}", got[0]);
        }
        assert_eq!(got[0]["window"], "day");
        webhook.shutdown(Duration::from_secs(5)).await;
    }

    #[tokio::test]
    async fn a_dead_webhook_never_blocks_the_caller_and_shutdown_is_bounded() {
        // Nothing listens here: every attempt fails to connect.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        drop(listener);
        let webhook = Webhook::start(WebhookConfig {
            queue: 2,
            retry: RetryPolicy {
                max_attempts: 100,
                base_delay: Duration::from_millis(50),
                max_delay: Duration::from_millis(50),
            },
            ..WebhookConfig::new(&url)
        })
        .unwrap();
        let started = std::time::Instant::now();
        for t in 0..100 {
            webhook.notify(&alert(t));
        }
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "notify blocked: {:?}",
            started.elapsed()
        );
        let started = std::time::Instant::now();
        webhook.shutdown(Duration::from_millis(200)).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        // After shutdown, alerts are dropped without blocking.
        webhook.notify(&alert(80));
    }

    #[test]
    fn logs_name_the_host_only() {
        assert_eq!(
            host_of("https://hooks.slack.com/services/T0/B0/SECRET"),
            "hooks.slack.com"
        );
        assert_eq!(host_of("http://user:pw@10.0.0.1:9000/x?y"), "10.0.0.1:9000");
    }
}
