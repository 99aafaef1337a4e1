//! crane's settings: defaults, then `crane.toml`, then `CRANE_*` environment variables and
//! flags. [`Settings::load`] takes the flags (and their variables, which the CLI's parser merges)
//! as plain [`Overrides`], so this crate knows nothing of argument parsing.
//!
//! The file is read from `--config` / `CRANE_CONFIG`, else `./crane.toml` when it exists. An
//! unknown key is an error naming the key, so a typo never silently does nothing.
//!
//! - `planner`: `[planner]`, `[[llm.providers]]`, `[[llm.tiers]]` and `CRANE_LLM_*` → the
//!   planner chain.
//! - `variants`: `[[planners]]` and `[registry]` → the named planner variants.
//! - `tracking`: `[tracking]` and MLflow's own variables → [`tracking::TrackingSettings`].
//! - `[server]` and `limits.max_header_bytes` (and their `CRANE_*` variables) →
//!   [`ServerSettings`], the limits of the HTTP edge.
//!
//! Depends on the core runtime and the LLM clients' configuration types; never on the server,
//! the evaluation harness or the CLI.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crane_core::runtime::{RetryPolicy, RuntimeConfig};
use crane_core::store::{StoreConfig, Synchronous};
use serde::Deserialize;

pub mod access;
mod error;
pub mod planner;
pub mod tracking;
pub mod variants;

use error::Context;
pub use error::{Result, SettingsError};

/// What the command line (flags, and the `CRANE_*` variables behind them) sets; `None` leaves
/// the file's value or the default.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--data-dir` / `CRANE_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url` / `CRANE_DATABASE_URL` (may hold a password: never log it).
    pub database_url: Option<String>,
    /// `--config` / `CRANE_CONFIG`.
    pub config: Option<PathBuf>,
    /// `--addr` / `CRANE_ADDR`.
    pub addr: Option<String>,
    /// `--log-format` / `CRANE_LOG_FORMAT`.
    pub log_format: Option<String>,
    /// `--max-prompt-chars` / `CRANE_MAX_PROMPT_CHARS`.
    pub max_prompt_chars: Option<usize>,
    /// `--workers` / `CRANE_WORKERS`.
    pub workers: Option<usize>,
    /// `--step-timeout-ms` / `CRANE_STEP_TIMEOUT_MS`.
    pub step_timeout_ms: Option<u64>,
    /// `--planner-strategy` / `CRANE_PLANNER_STRATEGY`.
    pub planner_strategy: Option<String>,
    /// `--debug-tools` / `CRANE_DEBUG_TOOLS`.
    pub debug_tools: Option<bool>,
    /// `--retry-max-attempts` / `CRANE_RETRY_MAX_ATTEMPTS`.
    pub retry_max_attempts: Option<u32>,
}

/// `crane.toml`. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub addr: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// Register the fault-injection tools.
    pub debug_tools: Option<bool>,
    /// `text` (default) or `json`.
    pub log_format: Option<String>,
    #[serde(default)]
    pub limits: LimitsFile,
    /// `[server]`: timeouts and the connection cap of the HTTP edge.
    #[serde(default)]
    pub server: ServerFile,
    #[serde(default)]
    pub runtime: RuntimeFile,
    #[serde(default)]
    pub retry: RetryFile,
    #[serde(default)]
    pub store: StoreFile,
    #[serde(default)]
    pub planner: crate::planner::PlannerFile,
    #[serde(default)]
    pub llm: crate::planner::LlmFile,
    /// `[[planners]]`: declared planner variants.
    #[serde(default)]
    pub planners: Vec<crate::variants::VariantFile>,
    /// `[registry]`: prompt-template directory and alias reload interval.
    #[serde(default)]
    pub registry: crate::variants::RegistryFile,
    /// `[tracking]`: MLflow export (docs/tracking.md).
    #[serde(default)]
    pub tracking: crate::tracking::TrackingFile,
    /// `[auth]`: off or keys.
    #[serde(default)]
    pub auth: access::AuthFile,
    /// `[[budgets]]`: spend budgets per tenant and window.
    #[serde(default)]
    pub budgets: Vec<access::BudgetFile>,
    /// `[alerts]`: where budget notifications go.
    #[serde(default)]
    pub alerts: access::AlertsFile,
    /// `[cache]`: the semantic plan cache (`[cache.semantic]`).
    #[serde(default)]
    pub cache: CacheFile,
}

/// `[cache]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheFile {
    #[serde(default)]
    pub semantic: SemanticFile,
}

/// `[cache.semantic]`: off unless `enabled = true`; `model_dir` is a sentence-transformers
/// folder (config.json, tokenizer.json, model.safetensors).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SemanticFile {
    pub enabled: Option<bool>,
    pub model_dir: Option<PathBuf>,
    /// Least cosine similarity of a near hit worth trying (0..1).
    pub threshold: Option<f32>,
    pub ttl_secs: Option<u64>,
    pub capacity: Option<usize>,
}

/// The semantic plan cache's effective settings (when enabled).
#[derive(Debug, Clone)]
pub struct SemanticSettings {
    pub model_dir: PathBuf,
    pub config: crane_core::planning::semantic::cache::SemanticConfig,
}

impl SemanticFile {
    /// The settings when enabled (`CRANE_SEMANTIC_CACHE=true|false` and
    /// `CRANE_EMBED_MODEL_DIR` override the file); an error says what to fix.
    pub fn resolve(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> crate::Result<Option<SemanticSettings>> {
        let enabled = match env("CRANE_SEMANTIC_CACHE").filter(|v| !v.is_empty()) {
            Some(v) => match v.as_str() {
                "true" | "1" | "on" => true,
                "false" | "0" | "off" => false,
                other => {
                    return Err(crate::settings_err!(
                        "CRANE_SEMANTIC_CACHE must be true or false, not '{other}'"
                    ));
                }
            },
            None => self.enabled.unwrap_or(false),
        };
        if !enabled {
            return Ok(None);
        }
        let model_dir = env("CRANE_EMBED_MODEL_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| self.model_dir.clone())
            .ok_or_else(|| {
                crate::settings_err!(
                    "[cache.semantic] is enabled but has no model_dir: set model_dir to a sentence-transformers folder (scripts/install-embedding-model.sh installs all-MiniLM-L6-v2) or CRANE_EMBED_MODEL_DIR"
                )
            })?;
        let defaults = crane_core::planning::semantic::cache::SemanticConfig::default();
        let threshold = self.threshold.unwrap_or(defaults.threshold);
        if !(threshold > 0.0 && threshold <= 1.0) {
            return Err(crate::settings_err!(
                "[cache.semantic] threshold must be above 0 and at most 1 (got {threshold})"
            ));
        }
        if self.capacity == Some(0) {
            return Err(crate::settings_err!(
                "[cache.semantic] capacity must be at least 1 (set enabled = false to turn the cache off)"
            ));
        }
        Ok(Some(SemanticSettings {
            model_dir,
            config: crane_core::planning::semantic::cache::SemanticConfig {
                threshold,
                ttl: self.ttl_secs.map_or(defaults.ttl, Duration::from_secs),
                capacity: self.capacity.unwrap_or(defaults.capacity),
            },
        }))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// Requests per second per API key (`auth = keys`).
    pub requests_per_second: Option<u32>,
    /// Runs created per minute per API key.
    pub runs_per_minute: Option<u32>,
    /// Requests per second of all a tenant's keys together.
    pub tenant_requests_per_second: Option<u32>,
    /// Runs created per minute of all a tenant's keys together.
    pub tenant_runs_per_minute: Option<u32>,
    pub max_prompt_chars: Option<usize>,
    pub max_body_bytes: Option<usize>,
    /// Largest request head (request line and headers) in bytes.
    pub max_header_bytes: Option<usize>,
}

/// `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// How long a client may take to send a request's headers (also how long an idle
    /// keep-alive connection stays open).
    pub header_read_timeout_ms: Option<u64>,
    /// How long a request may take to be answered, `?wait=true` waits excepted.
    pub request_timeout_ms: Option<u64>,
    /// Most connections open at once; more wait in the listen backlog.
    pub max_connections: Option<usize>,
}

/// The limits of the HTTP edge: `[server]`, `limits.max_header_bytes` and their `CRANE_*`
/// variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// `CRANE_HEADER_READ_TIMEOUT_MS` / `server.header_read_timeout_ms`.
    pub header_read_timeout: Duration,
    /// `CRANE_REQUEST_TIMEOUT_MS` / `server.request_timeout_ms`.
    pub request_timeout: Duration,
    /// `CRANE_MAX_CONNECTIONS` / `server.max_connections`.
    pub max_connections: usize,
    /// `CRANE_MAX_HEADER_BYTES` / `limits.max_header_bytes`.
    pub max_header_bytes: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_header_bytes: 16 * 1024,
        }
    }
}

impl ServerSettings {
    /// Largest accepted `max_connections` (the server counts connections with a semaphore
    /// whose permits are taken back at shutdown in one `u32` request).
    pub const MAX_CONNECTIONS: usize = 1_000_000;
    /// Accepted range of `max_header_bytes`: hyper needs at least 8 KiB of read buffer, and
    /// its read buffer holds at most ~400 KiB.
    pub const HEADER_BYTES: std::ops::RangeInclusive<usize> = 8 * 1024..=256 * 1024;

    /// Merges the file's values and the `CRANE_*` variables read through `env` (the
    /// variable wins), checking each.
    pub fn resolve(
        server: &ServerFile,
        limits: &LimitsFile,
        env: impl Fn(&str) -> Option<String>,
    ) -> crate::Result<Self> {
        let d = Self::default();
        let number = |var: &str, file: Option<u64>, key: &str| -> crate::Result<Option<u64>> {
            match env(var).filter(|v| !v.trim().is_empty()) {
                Some(v) => v.trim().parse::<u64>().map(Some).map_err(|_| {
                    crate::settings_err!("invalid {var} '{v}': expected a whole number")
                }),
                None => Ok(file),
            }
            .and_then(|n| match n {
                Some(0) => Err(crate::settings_err!(
                    "invalid {key} 0 ({var}): must be at least 1"
                )),
                other => Ok(other),
            })
        };
        let header_read_timeout = number(
            "CRANE_HEADER_READ_TIMEOUT_MS",
            server.header_read_timeout_ms,
            "server.header_read_timeout_ms",
        )?
        .map_or(d.header_read_timeout, Duration::from_millis);
        let request_timeout = number(
            "CRANE_REQUEST_TIMEOUT_MS",
            server.request_timeout_ms,
            "server.request_timeout_ms",
        )?
        .map_or(d.request_timeout, Duration::from_millis);
        let max_connections = number(
            "CRANE_MAX_CONNECTIONS",
            server.max_connections.map(|n| n as u64),
            "server.max_connections",
        )?
        .map_or(d.max_connections, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        });
        if max_connections > Self::MAX_CONNECTIONS {
            crate::settings_bail!(
                "invalid server.max_connections {max_connections} (CRANE_MAX_CONNECTIONS): at most {}",
                Self::MAX_CONNECTIONS
            );
        }
        let max_header_bytes = number(
            "CRANE_MAX_HEADER_BYTES",
            limits.max_header_bytes.map(|n| n as u64),
            "limits.max_header_bytes",
        )?
        .map_or(d.max_header_bytes, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        });
        if !Self::HEADER_BYTES.contains(&max_header_bytes) {
            crate::settings_bail!(
                "invalid limits.max_header_bytes {max_header_bytes} (CRANE_MAX_HEADER_BYTES): expected {} to {} bytes",
                Self::HEADER_BYTES.start(),
                Self::HEADER_BYTES.end()
            );
        }
        Ok(Self {
            header_read_timeout,
            request_timeout,
            max_connections,
            max_header_bytes,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeFile {
    pub workers: Option<usize>,
    pub max_queue: Option<usize>,
    pub step_timeout_ms: Option<u64>,
    pub wait_timeout_ms: Option<u64>,
    pub drain_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryFile {
    pub max_attempts: Option<u32>,
    pub base_delay_ms: Option<u64>,
    pub max_delay_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreFile {
    /// `normal` (survives a killed process) or `full` (also survives power loss).
    pub synchronous: Option<String>,
    /// `postgres://...`: the PostgreSQL database every replica shares (the flag and
    /// `CRANE_DATABASE_URL` win over it).
    pub database_url: Option<String>,
    /// Most PostgreSQL connections per replica (default 16).
    pub pool_size: Option<u32>,
    /// How long a replica's lease on a run lasts without a heartbeat, in milliseconds
    /// (default 10000; PostgreSQL only).
    pub lease_ms: Option<u64>,
}

/// Effective settings after merging every source.
#[derive(Debug, Clone)]
pub struct Settings {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub json_logs: bool,
    pub debug_tools: bool,
    pub max_body_bytes: usize,
    pub wait_timeout: Duration,
    pub drain_timeout: Duration,
    /// Limits of the HTTP edge (timeouts, connection cap, header size).
    pub server: ServerSettings,
    pub runtime: RuntimeConfig,
    pub store: StoreConfig,
    /// `[planner]` and `[llm]` from the file, and the strategy flag; turned into the planner
    /// chain by [`Settings::planning`].
    pub planner: crate::planner::PlannerFile,
    pub llm: crate::planner::LlmFile,
    pub strategy: Option<String>,
    /// Declared planner variants and the registry settings.
    pub variants: Vec<crate::variants::VariantFile>,
    pub registry: crate::variants::RegistryFile,
    /// MLflow tracking: `[tracking]`, `MLFLOW_*` and `CRANE_MLFLOW_*`.
    pub tracking: crate::tracking::TrackingSettings,
    /// Auth mode, rate limits, budgets and alerts.
    pub access: access::AccessSettings,
    /// The semantic plan cache, when enabled.
    pub semantic: Option<SemanticSettings>,
}

fn read_file(path: &Path) -> crate::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("could not read config file {}", path.display()))?;
    toml::from_str(&text)
        .map_err(|e| crate::settings_err!("invalid config file {}: {e}", path.display()))
}

impl Settings {
    /// The tools runs may call: the built-in ones, plus the fault-injection tools with
    /// `debug_tools`.
    pub fn tool_registry(&self) -> crane_core::tools::ToolRegistry {
        if self.debug_tools {
            crane_core::tools::registry_with_debug_tools()
        } else {
            crane_core::tools::builtin_registry()
        }
    }

    /// What the planner variants are built from.
    pub fn planning_inputs(&self) -> variants::PlanningInputs<'_> {
        variants::PlanningInputs {
            planner: &self.planner,
            llm: &self.llm,
            strategy: self.strategy.as_deref(),
            variants: &self.variants,
            registry: &self.registry,
        }
    }

    /// The planner chain: the rule planner, or LLM layers when configured.
    pub fn planning(&self) -> crate::Result<crane_core::planning::PlanningConfig> {
        self.planning_inputs().planning()
    }

    /// The planner variants (with `tools`) and the prompt library of these settings.
    pub fn planners(
        &self,
        tools: std::sync::Arc<crane_core::tools::ToolRegistry>,
    ) -> crate::Result<(
        crane_core::planning::Planners,
        crane_core::planning::prompt_library::PromptLibrary,
    )> {
        variants::build(&self.planning_inputs(), tools)
    }

    /// Merges defaults, the config file and flags/environment.
    pub fn load(common: &Overrides) -> crate::Result<Self> {
        let file = match &common.config {
            Some(path) => read_file(path)?,
            None if Path::new("crane.toml").exists() => read_file(Path::new("crane.toml"))?,
            None => FileConfig::default(),
        };
        let addr_text = common
            .addr
            .clone()
            .or(file.addr)
            .unwrap_or_else(|| "127.0.0.1:8000".into());
        let addr: SocketAddr = addr_text.parse().map_err(|e| {
            crate::settings_err!(
                "invalid address '{addr_text}': {e} (expected host:port, e.g. 127.0.0.1:8000)"
            )
        })?;
        let log_format = common
            .log_format
            .clone()
            .or(file.log_format)
            .unwrap_or_else(|| "text".into());
        let json_logs = match log_format.as_str() {
            "json" => true,
            "text" => false,
            other => crate::settings_bail!("invalid log format '{other}' (expected text or json)"),
        };
        let synchronous = match file.store.synchronous.as_deref().unwrap_or("normal") {
            "normal" => Synchronous::Normal,
            "full" => Synchronous::Full,
            other => crate::settings_bail!(
                "invalid store.synchronous '{other}' (expected normal or full)"
            ),
        };
        let defaults = RuntimeConfig::default();
        let retry_defaults = RetryPolicy::default();
        let ms = Duration::from_millis;
        let runtime = RuntimeConfig {
            workers: common
                .workers
                .or(file.runtime.workers)
                .unwrap_or(defaults.workers)
                .max(1),
            max_queue: file.runtime.max_queue.unwrap_or(defaults.max_queue),
            max_prompt_chars: common
                .max_prompt_chars
                .or(file.limits.max_prompt_chars)
                .unwrap_or(defaults.max_prompt_chars),
            step_timeout: common
                .step_timeout_ms
                .or(file.runtime.step_timeout_ms)
                .map_or(defaults.step_timeout, ms),
            retry: RetryPolicy {
                max_attempts: common
                    .retry_max_attempts
                    .or(file.retry.max_attempts)
                    .unwrap_or(retry_defaults.max_attempts)
                    .max(1),
                base_delay: file
                    .retry
                    .base_delay_ms
                    .map_or(retry_defaults.base_delay, ms),
                max_delay: file.retry.max_delay_ms.map_or(retry_defaults.max_delay, ms),
            },
        };
        let access = access::AccessSettings::resolve(
            &file.auth,
            &file.limits,
            &file.budgets,
            &file.alerts,
            |k| std::env::var(k).ok(),
        )?;
        let tracking =
            crate::tracking::TrackingSettings::resolve(&file.tracking, |k| std::env::var(k).ok())?;
        let server =
            ServerSettings::resolve(&file.server, &file.limits, |k| std::env::var(k).ok())?;
        let semantic = file.cache.semantic.resolve(|k| std::env::var(k).ok())?;
        Ok(Self {
            semantic,
            addr,
            data_dir: common
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(".crane")),
            json_logs,
            debug_tools: common.debug_tools.or(file.debug_tools).unwrap_or(false),
            max_body_bytes: file.limits.max_body_bytes.unwrap_or(64 * 1024),
            wait_timeout: file
                .runtime
                .wait_timeout_ms
                .map_or(Duration::from_secs(30), ms),
            drain_timeout: file
                .runtime
                .drain_timeout_ms
                .map_or(Duration::from_secs(30), ms),
            server,
            runtime,
            store: StoreConfig {
                synchronous,
                database_url: common
                    .database_url
                    .clone()
                    .or(file.store.database_url)
                    .filter(|u| !u.trim().is_empty()),
                pool_size: file.store.pool_size.unwrap_or(16).clamp(2, 1000),
                lease: file
                    .store
                    .lease_ms
                    .map_or(Duration::from_secs(10), |m| ms(m.max(300))),
                ..StoreConfig::default()
            },
            planner: file.planner,
            llm: file.llm,
            strategy: common.planner_strategy.clone(),
            variants: file.planners,
            registry: crate::variants::RegistryFile {
                prompts_dir: std::env::var_os("CRANE_PROMPTS_DIR")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
                    .or(file.registry.prompts_dir),
                ..file.registry
            },
            tracking,
            access,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn server_settings_default_then_file_then_env() {
        let none =
            ServerSettings::resolve(&ServerFile::default(), &LimitsFile::default(), env(&[]));
        assert_eq!(none.unwrap(), ServerSettings::default());

        let file: FileConfig = toml::from_str(
            "[server]\nheader_read_timeout_ms = 2000\nrequest_timeout_ms = 5000\nmax_connections = 8\n\
             [limits]\nmax_header_bytes = 32768\n",
        )
        .unwrap();
        let from_file = ServerSettings::resolve(&file.server, &file.limits, env(&[])).unwrap();
        assert_eq!(
            from_file,
            ServerSettings {
                header_read_timeout: Duration::from_secs(2),
                request_timeout: Duration::from_secs(5),
                max_connections: 8,
                max_header_bytes: 32768,
            }
        );

        let vars = [
            ("CRANE_HEADER_READ_TIMEOUT_MS", "500"),
            ("CRANE_REQUEST_TIMEOUT_MS", " 700 "),
            ("CRANE_MAX_CONNECTIONS", "2"),
            ("CRANE_MAX_HEADER_BYTES", "8192"),
        ];
        let from_env = ServerSettings::resolve(&file.server, &file.limits, env(&vars)).unwrap();
        assert_eq!(
            from_env,
            ServerSettings {
                header_read_timeout: Duration::from_millis(500),
                request_timeout: Duration::from_millis(700),
                max_connections: 2,
                max_header_bytes: 8192,
            }
        );
    }

    #[test]
    fn server_settings_errors_name_the_key() {
        let check = |vars: &[(&str, &str)], needle: &str| {
            let error =
                ServerSettings::resolve(&ServerFile::default(), &LimitsFile::default(), env(vars))
                    .unwrap_err()
                    .to_string();
            assert!(
                error.contains(needle),
                "{error:?} should mention {needle:?}"
            );
        };
        check(
            &[("CRANE_REQUEST_TIMEOUT_MS", "soon")],
            "CRANE_REQUEST_TIMEOUT_MS",
        );
        check(&[("CRANE_HEADER_READ_TIMEOUT_MS", "0")], "at least 1");
        check(&[("CRANE_MAX_CONNECTIONS", "0")], "server.max_connections");
        check(&[("CRANE_MAX_CONNECTIONS", "2000000")], "at most 1000000");
        check(
            &[("CRANE_MAX_HEADER_BYTES", "100")],
            "limits.max_header_bytes",
        );

        let unknown = toml::from_str::<FileConfig>("[server]\nheader_timeout_ms = 5\n")
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("header_timeout_ms"), "{unknown}");
    }
}
