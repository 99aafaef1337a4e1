//! The `[tracking]` settings: where crane's results go in MLflow. Configuration comes from
//! MLflow's own variables (`MLFLOW_TRACKING_URI`, `MLFLOW_EXPERIMENT_NAME`,
//! `MLFLOW_TRACKING_TOKEN`, `MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD`),
//! `CRANE_MLFLOW_*` knobs and the `[tracking]` table of crane.toml; secrets come only from the
//! environment and are never logged. The exporters live in the `crane-tracking` crate;
//! docs/tracking.md is the user guide.

use std::time::Duration;

use serde::Deserialize;

/// Experiment of eval runs when neither `MLFLOW_EXPERIMENT_NAME` nor `[tracking] experiment`
/// names one.
pub const DEFAULT_EVAL_EXPERIMENT: &str = "crane-evals";
/// Experiment of agent runs when nothing names one.
pub const DEFAULT_RUNS_EXPERIMENT: &str = "crane-runs";

/// The `[tracking]` table of crane.toml. Every key is optional; the environment wins.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackingFile {
    /// MLflow tracking server (`MLFLOW_TRACKING_URI` wins).
    pub uri: Option<String>,
    /// Experiment of eval runs (`MLFLOW_EXPERIMENT_NAME` wins).
    pub experiment: Option<String>,
    /// Experiment of agent runs (`CRANE_MLFLOW_RUNS_EXPERIMENT` wins).
    pub runs_experiment: Option<String>,
    /// Export every finished agent run (`CRANE_MLFLOW_LOG_RUNS`).
    pub log_runs: Option<bool>,
    /// Fraction of finished runs exported, 0.0–1.0 (`CRANE_MLFLOW_RUNS_SAMPLE_RATIO`).
    pub runs_sample_ratio: Option<f64>,
    /// Runs waiting for export at most; more are dropped and counted
    /// (`CRANE_MLFLOW_QUEUE_CAPACITY`).
    pub queue_capacity: Option<usize>,
    /// Runs exported per batch at most (`CRANE_MLFLOW_BATCH_SIZE`).
    pub batch_size: Option<usize>,
    /// Longest wait for a batch to fill, in ms (`CRANE_MLFLOW_FLUSH_INTERVAL_MS`).
    pub flush_interval_ms: Option<u64>,
    /// MLflow requests in flight at once per batch (`CRANE_MLFLOW_CONCURRENCY`).
    pub concurrency: Option<usize>,
    /// Longest wait at shutdown for queued runs to be exported, in ms
    /// (`CRANE_MLFLOW_SHUTDOWN_TIMEOUT_MS`).
    pub shutdown_timeout_ms: Option<u64>,
}

/// Credentials for the tracking server (MLflow's own variables). Never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Auth {
    #[default]
    None,
    /// `MLFLOW_TRACKING_TOKEN`.
    Bearer(String),
    /// `MLFLOW_TRACKING_USERNAME` + `MLFLOW_TRACKING_PASSWORD`.
    Basic { username: String, password: String },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "None",
            Self::Bearer(_) => "Bearer(<redacted>)",
            Self::Basic { .. } => "Basic(<redacted>)",
        })
    }
}

/// Where to send tracking data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http(s)://host:port[/prefix]`.
    pub uri: String,
    pub auth: Auth,
}

/// Effective tracking settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackingSettings {
    /// The tracking server; `None` turns tracking off.
    pub endpoint: Option<Endpoint>,
    pub eval_experiment: String,
    pub runs_experiment: String,
    pub log_runs: bool,
    /// Fraction of finished runs exported, chosen by trace id (see `run_export::sampled`).
    pub runs_sample_ratio: f64,
    pub queue_capacity: usize,
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub concurrency: usize,
    pub shutdown_timeout: Duration,
}

impl Default for TrackingSettings {
    fn default() -> Self {
        Self {
            endpoint: None,
            eval_experiment: DEFAULT_EVAL_EXPERIMENT.into(),
            runs_experiment: DEFAULT_RUNS_EXPERIMENT.into(),
            log_runs: false,
            runs_sample_ratio: 1.0,
            queue_capacity: 10_000,
            batch_size: 100,
            flush_interval: Duration::from_millis(1000),
            // MLflow's SQLite store serialises writes: 2 in flight exported the most runs/s
            // (docs/benchmarks.md); 16 made requests time out.
            concurrency: 2,
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

/// Why the tracking configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid {name} '{value}': {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn parse_bool(name: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(ConfigError::Invalid {
            name,
            value: value.to_owned(),
            reason: "expected true or false",
        }),
    }
}

/// `value` (text from the environment, or a number from crane.toml) as a fraction in 0.0–1.0.
fn ratio(name: &'static str, value: &str, parsed: Option<f64>) -> Result<f64, ConfigError> {
    match parsed {
        Some(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(ConfigError::Invalid {
            name,
            value: value.to_owned(),
            reason: "expected a fraction from 0.0 to 1.0",
        }),
    }
}

fn parse_positive<T: std::str::FromStr + PartialOrd + Default>(
    name: &'static str,
    value: &str,
) -> Result<T, ConfigError> {
    match value.trim().parse::<T>() {
        Ok(n) if n > T::default() => Ok(n),
        _ => Err(ConfigError::Invalid {
            name,
            value: value.to_owned(),
            reason: "expected a positive integer",
        }),
    }
}

impl TrackingSettings {
    /// Merges defaults, `[tracking]` and the environment (`env` looks a variable up; tests
    /// pass a map, the binary `std::env::var`).
    pub fn resolve(
        file: &TrackingFile,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let d = Self::default();
        let uri = non_empty(env("MLFLOW_TRACKING_URI")).or_else(|| non_empty(file.uri.clone()));
        let endpoint = match uri {
            None => None,
            Some(uri) => {
                if !(uri.starts_with("http://") || uri.starts_with("https://")) {
                    return Err(ConfigError::Invalid {
                        name: "MLFLOW_TRACKING_URI",
                        value: redact_uri(&uri),
                        reason: "crane logs to an MLflow tracking server: expected an http:// or https:// URL",
                    });
                }
                let auth = match (
                    non_empty(env("MLFLOW_TRACKING_TOKEN")),
                    non_empty(env("MLFLOW_TRACKING_USERNAME")),
                ) {
                    (Some(token), _) => Auth::Bearer(token),
                    (None, Some(username)) => Auth::Basic {
                        username,
                        password: env("MLFLOW_TRACKING_PASSWORD").unwrap_or_default(),
                    },
                    (None, None) => Auth::None,
                };
                Some(Endpoint { uri, auth })
            }
        };
        let env_or = |name: &'static str| non_empty(env(name));
        let eval_experiment = env_or("MLFLOW_EXPERIMENT_NAME")
            .or_else(|| non_empty(file.experiment.clone()))
            .unwrap_or(d.eval_experiment);
        let runs_experiment = env_or("CRANE_MLFLOW_RUNS_EXPERIMENT")
            .or_else(|| non_empty(file.runs_experiment.clone()))
            .or_else(|| env_or("MLFLOW_EXPERIMENT_NAME"))
            .unwrap_or(d.runs_experiment);
        let log_runs = match env_or("CRANE_MLFLOW_LOG_RUNS") {
            Some(v) => parse_bool("CRANE_MLFLOW_LOG_RUNS", &v)?,
            None => file.log_runs.unwrap_or(false),
        };
        let runs_sample_ratio = match (
            env_or("CRANE_MLFLOW_RUNS_SAMPLE_RATIO"),
            file.runs_sample_ratio,
        ) {
            (Some(v), _) => ratio("CRANE_MLFLOW_RUNS_SAMPLE_RATIO", &v, v.trim().parse().ok())?,
            (None, Some(r)) => ratio("[tracking] runs_sample_ratio", &r.to_string(), Some(r))?,
            (None, None) => d.runs_sample_ratio,
        };
        let usize_knob =
            |name: &'static str, file: Option<usize>, default: usize| match env_or(name) {
                Some(v) => parse_positive::<usize>(name, &v),
                None => Ok(file.unwrap_or(default).max(1)),
            };
        let ms_knob = |name: &'static str, file: Option<u64>, default: Duration| match env_or(name)
        {
            Some(v) => parse_positive::<u64>(name, &v).map(Duration::from_millis),
            None => Ok(file.map_or(default, Duration::from_millis)),
        };
        Ok(Self {
            endpoint,
            eval_experiment,
            runs_experiment,
            log_runs,
            runs_sample_ratio,
            queue_capacity: usize_knob(
                "CRANE_MLFLOW_QUEUE_CAPACITY",
                file.queue_capacity,
                d.queue_capacity,
            )?,
            batch_size: usize_knob("CRANE_MLFLOW_BATCH_SIZE", file.batch_size, d.batch_size)?,
            flush_interval: ms_knob(
                "CRANE_MLFLOW_FLUSH_INTERVAL_MS",
                file.flush_interval_ms,
                d.flush_interval,
            )?,
            concurrency: usize_knob("CRANE_MLFLOW_CONCURRENCY", file.concurrency, d.concurrency)?,
            shutdown_timeout: ms_knob(
                "CRANE_MLFLOW_SHUTDOWN_TIMEOUT_MS",
                file.shutdown_timeout_ms,
                d.shutdown_timeout,
            )?,
        })
    }
}

/// `uri` without the user-info part (`http://user:secret@host` → `http://host`).
pub fn redact_uri(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => uri.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn off_without_a_uri() {
        let s = TrackingSettings::resolve(&TrackingFile::default(), env(&[])).unwrap();
        assert_eq!(s, TrackingSettings::default());
        assert!(s.endpoint.is_none());
    }

    #[test]
    fn environment_wins_over_the_file() {
        let file = TrackingFile {
            uri: Some("http://file:5000".into()),
            experiment: Some("file-exp".into()),
            runs_experiment: Some("file-runs".into()),
            log_runs: Some(false),
            batch_size: Some(7),
            flush_interval_ms: Some(250),
            ..TrackingFile::default()
        };
        let s = TrackingSettings::resolve(
            &file,
            env(&[
                ("MLFLOW_TRACKING_URI", "http://env:5000/"),
                ("MLFLOW_EXPERIMENT_NAME", "env-exp"),
                ("CRANE_MLFLOW_LOG_RUNS", "true"),
                ("CRANE_MLFLOW_QUEUE_CAPACITY", "50"),
            ]),
        )
        .unwrap();
        let endpoint = s.endpoint.unwrap();
        assert_eq!(endpoint.uri, "http://env:5000/");
        assert_eq!(endpoint.auth, Auth::None);
        assert_eq!(s.eval_experiment, "env-exp");
        // The file's runs experiment is more specific than MLFLOW_EXPERIMENT_NAME.
        assert_eq!(s.runs_experiment, "file-runs");
        assert!(s.log_runs);
        assert_eq!(s.queue_capacity, 50);
        assert_eq!(s.batch_size, 7);
        assert_eq!(s.flush_interval, Duration::from_millis(250));
    }

    #[test]
    fn the_runs_sample_ratio_is_a_fraction() {
        let uri = ("MLFLOW_TRACKING_URI", "http://h:1");
        let s = TrackingSettings::resolve(&TrackingFile::default(), env(&[uri])).unwrap();
        assert_eq!(s.runs_sample_ratio, 1.0);
        let file = TrackingFile {
            runs_sample_ratio: Some(0.25),
            ..TrackingFile::default()
        };
        let s = TrackingSettings::resolve(&file, env(&[uri])).unwrap();
        assert_eq!(s.runs_sample_ratio, 0.25);
        let s = TrackingSettings::resolve(
            &file,
            env(&[uri, ("CRANE_MLFLOW_RUNS_SAMPLE_RATIO", "0.1")]),
        )
        .unwrap();
        assert_eq!(s.runs_sample_ratio, 0.1);
        for bad in ["1.5", "-0.1", "NaN", "half"] {
            let err = TrackingSettings::resolve(
                &TrackingFile::default(),
                env(&[uri, ("CRANE_MLFLOW_RUNS_SAMPLE_RATIO", bad)]),
            )
            .unwrap_err();
            assert!(err.to_string().contains("from 0.0 to 1.0"), "{err}");
        }
        let file = TrackingFile {
            runs_sample_ratio: Some(2.0),
            ..TrackingFile::default()
        };
        assert!(TrackingSettings::resolve(&file, env(&[uri])).is_err());
    }

    #[test]
    fn runs_follow_mlflow_experiment_name_unless_named() {
        let s = TrackingSettings::resolve(
            &TrackingFile::default(),
            env(&[
                ("MLFLOW_TRACKING_URI", "http://h:1"),
                ("MLFLOW_EXPERIMENT_NAME", "team"),
            ]),
        )
        .unwrap();
        assert_eq!(s.runs_experiment, "team");
        let s = TrackingSettings::resolve(
            &TrackingFile::default(),
            env(&[
                ("MLFLOW_TRACKING_URI", "http://h:1"),
                ("MLFLOW_EXPERIMENT_NAME", "team"),
                ("CRANE_MLFLOW_RUNS_EXPERIMENT", "agents"),
            ]),
        )
        .unwrap();
        assert_eq!(s.runs_experiment, "agents");
        assert_eq!(s.eval_experiment, "team");
    }

    #[test]
    fn credentials_come_from_mlflow_variables_and_are_never_printed() {
        let s = TrackingSettings::resolve(
            &TrackingFile::default(),
            env(&[
                ("MLFLOW_TRACKING_URI", "https://h"),
                ("MLFLOW_TRACKING_TOKEN", "tok-secret"),
                ("MLFLOW_TRACKING_USERNAME", "u"),
            ]),
        )
        .unwrap();
        assert_eq!(
            s.endpoint.as_ref().unwrap().auth,
            Auth::Bearer("tok-secret".into())
        );
        assert!(!format!("{s:?}").contains("tok-secret"));
        let s = TrackingSettings::resolve(
            &TrackingFile::default(),
            env(&[
                ("MLFLOW_TRACKING_URI", "https://h"),
                ("MLFLOW_TRACKING_USERNAME", "u"),
                ("MLFLOW_TRACKING_PASSWORD", "pw-secret"),
            ]),
        )
        .unwrap();
        assert_eq!(
            s.endpoint.as_ref().unwrap().auth,
            Auth::Basic {
                username: "u".into(),
                password: "pw-secret".into()
            }
        );
        assert!(!format!("{s:?}").contains("pw-secret"));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = TrackingSettings::resolve(
            &TrackingFile::default(),
            env(&[("MLFLOW_TRACKING_URI", "file:./mlruns")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("MLFLOW_TRACKING_URI"), "{e}");
        let e = TrackingSettings::resolve(
            &TrackingFile::default(),
            env(&[("CRANE_MLFLOW_LOG_RUNS", "maybe")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("CRANE_MLFLOW_LOG_RUNS"), "{e}");
        let e = TrackingSettings::resolve(
            &TrackingFile::default(),
            env(&[("CRANE_MLFLOW_BATCH_SIZE", "0")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("CRANE_MLFLOW_BATCH_SIZE"), "{e}");
    }

    #[test]
    fn user_info_is_removed_from_uris() {
        assert_eq!(redact_uri("http://u:p@host:5000/x"), "http://host:5000/x");
        assert_eq!(redact_uri("http://host:5000/a@b"), "http://host:5000/a@b");
        assert_eq!(redact_uri("http://host"), "http://host");
        assert_eq!(redact_uri("weird"), "weird");
    }
}
