//! [`MonitoredExporter`]: the OTLP span exporter wrapped so that its outcome is visible. The
//! OpenTelemetry SDK drops a batch it could not send without a word (its internal logs are
//! compiled out), so a collector that is down, unreachable or refusing crane's headers looked
//! exactly like a healthy one. Here every batch counts its spans in
//! `crane_trace_export_spans_total{result="exported"|"failed"}` and failures are logged: the
//! first one at once, then at most one summary per [`LOG_EVERY`], and the recovery.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// Longest quiet time between two warnings while export keeps failing.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Failures since the last warning.
#[derive(Debug, Default)]
struct Failing {
    /// When the last warning was written; `None` while export works.
    warned_at: Option<Instant>,
    batches: u64,
    spans: u64,
    /// Spans lost since export started failing (for the recovery message).
    lost: u64,
}

/// Wraps `E`, counting and reporting what each export achieved.
#[derive(Debug)]
pub struct MonitoredExporter<E> {
    inner: E,
    /// Values that must not appear in a logged error (OTLP header values such as API keys).
    secrets: Vec<String>,
    failing: Mutex<Failing>,
}

impl<E> MonitoredExporter<E> {
    /// Wraps `inner`; `secrets` are redacted from the errors it logs.
    pub fn new(inner: E, secrets: Vec<String>) -> Self {
        Self {
            inner,
            secrets: secrets.into_iter().filter(|s| s.len() >= 4).collect(),
            failing: Mutex::default(),
        }
    }

    fn redact(&self, text: String) -> String {
        self.secrets
            .iter()
            .fold(text, |text, secret| text.replace(secret.as_str(), "***"))
    }

    /// Records the outcome of one batch of `spans` spans.
    fn record(&self, spans: u64, result: &OTelSdkResult) {
        let Ok(mut failing) = self.failing.lock() else {
            return;
        };
        match result {
            Ok(()) => {
                metrics::counter!("crane_trace_export_spans_total", "result" => "exported")
                    .increment(spans);
                if failing.warned_at.is_some() {
                    tracing::info!(
                        lost_spans = failing.lost + failing.spans,
                        "trace export works again"
                    );
                    *failing = Failing::default();
                }
            }
            Err(error) => {
                metrics::counter!("crane_trace_export_spans_total", "result" => "failed")
                    .increment(spans);
                failing.batches += 1;
                failing.spans += spans;
                let due = failing.warned_at.is_none_or(|at| at.elapsed() >= LOG_EVERY);
                if due {
                    let error = self.redact(error.to_string());
                    tracing::warn!(
                        failed_batches = failing.batches,
                        failed_spans = failing.spans,
                        %error,
                        "trace export is failing; these spans are lost (check \
                         OTEL_EXPORTER_OTLP_ENDPOINT and that the collector is up)"
                    );
                    failing.warned_at = Some(Instant::now());
                    failing.lost += failing.spans;
                    failing.batches = 0;
                    failing.spans = 0;
                }
            }
        }
    }
}

impl<E: SpanExporter> SpanExporter for MonitoredExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        let result = self.inner.export(batch).await;
        self.record(spans, &result);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The header values of `OTEL_EXPORTER_OTLP_HEADERS` / `..._TRACES_HEADERS`.
pub fn header_secrets() -> Vec<String> {
    secrets_of(
        [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ]
        .iter()
        .filter_map(|name| std::env::var(name).ok()),
    )
}

/// The values of `key=value,key=value` header lists, as written and percent-decoded (the OTLP
/// variables may percent-encode them).
fn secrets_of(lists: impl Iterator<Item = String>) -> Vec<String> {
    lists
        .flat_map(|list| {
            list.split(',')
                .filter_map(|pair| pair.split_once('=').map(|(_, v)| v.trim().to_owned()))
                .collect::<Vec<_>>()
        })
        .flat_map(|v| {
            let decoded = percent_encoding::percent_decode_str(&v)
                .decode_utf8_lossy()
                .into_owned();
            [v, decoded]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::error::OTelSdkError;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex as StdMutex};
    use tracing_subscriber::layer::SubscriberExt as _;

    /// An exporter that fails while `down` is set.
    #[derive(Debug, Clone, Default)]
    struct Flaky {
        down: Arc<AtomicBool>,
    }

    impl SpanExporter for Flaky {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            if self.down.load(Ordering::SeqCst) {
                Err(OTelSdkError::InternalFailure(
                    "connection refused; authorization: Bearer sk-otlp-secret".into(),
                ))
            } else {
                Ok(())
            }
        }
    }

    /// A log buffer and a subscriber writing into it.
    #[derive(Clone, Default)]
    struct Buffer(Arc<StdMutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn failures_are_logged_once_per_period_redacted_and_recovery_is_said() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone()),
        );
        let _guard = tracing::subscriber::set_default(subscriber);

        let flaky = Flaky::default();
        let exporter = MonitoredExporter::new(flaky.clone(), vec!["sk-otlp-secret".into()]);
        assert!(exporter.export(Vec::new()).await.is_ok());
        flaky.down.store(true, Ordering::SeqCst);
        for _ in 0..5 {
            assert!(exporter.export(Vec::new()).await.is_err());
        }
        flaky.down.store(false, Ordering::SeqCst);
        assert!(exporter.export(Vec::new()).await.is_ok());
        assert!(exporter.export(Vec::new()).await.is_ok());

        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
        assert_eq!(
            warnings.len(),
            1,
            "one warning for five failures in a minute:\n{text}"
        );
        assert!(warnings[0].contains("trace export is failing"), "{text}");
        assert!(warnings[0].contains("connection refused"), "{text}");
        assert!(!text.contains("sk-otlp-secret"), "{text}");
        assert_eq!(
            text.lines()
                .filter(|l| l.contains("trace export works again"))
                .count(),
            1,
            "{text}"
        );
    }

    #[test]
    fn header_values_are_secrets_also_percent_decoded() {
        let secrets =
            secrets_of(["authorization=Bearer%20abc%2Fd, x-team = 100%".to_owned()].into_iter());
        assert_eq!(
            secrets,
            ["Bearer%20abc%2Fd", "Bearer abc/d", "100%", "100%"]
        );
        let exporter = MonitoredExporter::new(Flaky::default(), vec!["ab".into(), "abcd".into()]);
        assert_eq!(exporter.secrets, ["abcd"], "too short to redact safely");
    }
}
