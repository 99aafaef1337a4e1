//! The planner chain's configuration: `[planner]`, `[[llm.providers]]`, `[[llm.tiers]]` and
//! `[llm.pricing.MODEL]` in crane.toml, plus the single-LLM environment contract
//! (`CRANE_LLM_PROVIDER`, `CRANE_LLM_BASE_URL`, `CRANE_LLM_API_KEY`, `CRANE_LLM_MODEL`).
//! Builds the `PlanningConfig` the runtime plans with. API keys are read from the file, from an
//! environment variable the file names (`api_key_env`), or from `CRANE_LLM_API_KEY`, and are
//! never printed.

use std::collections::HashMap;
use std::time::Duration;

use crate::error::Context;
use crane_core::planning::prompt::PromptTemplate;
use crane_core::planning::routing::Tier;
use crane_core::planning::{LlmLayerConfig, PlanningConfig, Strategy};
use crane_llm::{
    ApiKey, BreakerConfig, Pricing, Provider, ProviderConfig, ProviderKind, RetryConfig,
    StructuredMode,
};
use serde::Deserialize;

/// `[planner]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannerFile {
    /// `rule`, `llm_first` or `rule_first`.
    pub strategy: Option<String>,
    pub deadline_ms: Option<u64>,
    pub fallback_on_auth_error: Option<bool>,
    pub few_shot: Option<bool>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub cache_capacity: Option<usize>,
    pub cache_ttl_secs: Option<u64>,
    /// Planning budget per run: most input + output tokens of its LLM calls.
    pub max_run_tokens: Option<u64>,
    /// Planning budget per run: most USD of its LLM calls (priced models).
    pub max_run_cost_usd: Option<f64>,
}

impl PlannerFile {
    /// The planning budget, checked: a cost limit must be a finite number ≥ 0.
    pub fn budget(&self) -> crate::error::Result<crane_core::planning::PlanningBudget> {
        if let Some(usd) = self.max_run_cost_usd
            && !(usd.is_finite() && usd >= 0.0)
        {
            crate::settings_bail!(
                "[planner] max_run_cost_usd must be a number of USD ≥ 0, not {usd}; remove it for no limit"
            );
        }
        Ok(crane_core::planning::PlanningBudget {
            max_tokens: self.max_run_tokens,
            max_cost_usd: self.max_run_cost_usd,
        })
    }
}

/// `[llm]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmFile {
    #[serde(default)]
    pub providers: Vec<ProviderFile>,
    #[serde(default)]
    pub tiers: Vec<TierFile>,
    #[serde(default)]
    pub pricing: HashMap<String, PricingFile>,
}

/// One `[[llm.providers]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderFile {
    pub name: String,
    /// `openai` (any OpenAI-compatible server) or `anthropic`.
    #[serde(default = "default_kind")]
    pub kind: String,
    pub base_url: Option<String>,
    /// Required, except on the entry named `primary` when `CRANE_LLM_MODEL` names the model.
    pub model: Option<String>,
    /// The key itself (prefer `api_key_env`). Redacted in Debug output.
    pub api_key: Option<ApiKey>,
    /// Name of an environment variable holding the key.
    pub api_key_env: Option<String>,
    /// Structured-output modes to try, in order.
    pub modes: Option<Vec<String>>,
    pub timeout_ms: Option<u64>,
    pub connect_timeout_ms: Option<u64>,
    pub max_retries: Option<u32>,
    pub breaker_failures: Option<u32>,
    pub breaker_cooldown_ms: Option<u64>,
    /// Ask for streamed answers when planning can use them (default true).
    pub stream: Option<bool>,
}

fn default_kind() -> String {
    "openai".into()
}

/// One `[[llm.tiers]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierFile {
    pub name: String,
    pub model: String,
    pub max_complexity: Option<u32>,
}

/// `[llm.pricing.MODEL]`: USD per million tokens.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricingFile {
    pub input_per_million: f64,
    pub output_per_million: f64,
}

/// The single-LLM environment contract.
#[derive(Debug, Default, Clone)]
pub struct LlmEnv {
    pub provider: Option<String>,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub model: Option<String>,
    /// `CRANE_LLM_STREAM`: streamed answers on or off for every provider (wins over the file).
    pub stream: Option<bool>,
}

impl LlmEnv {
    /// Reads `CRANE_LLM_*`; empty values count as unset.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            provider: var("CRANE_LLM_PROVIDER"),
            base_url: var("CRANE_LLM_BASE_URL"),
            api_key: var("CRANE_LLM_API_KEY"),
            model: var("CRANE_LLM_MODEL"),
            stream: var("CRANE_LLM_STREAM").and_then(|v| parse_bool(&v)),
        }
    }

    fn is_set(&self) -> bool {
        self.base_url.is_some()
            || self.api_key.is_some()
            || self.model.is_some()
            || self.provider.is_some()
    }
}

/// `true`/`1`/`on`/`yes` or `false`/`0`/`off`/`no`; anything else is ignored with a warning.
fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "on" | "yes" => Some(true),
        "false" | "0" | "off" | "no" => Some(false),
        other => {
            tracing::warn!(
                value = other,
                "CRANE_LLM_STREAM is not true or false; ignoring it"
            );
            None
        }
    }
}

fn parse_kind(kind: &str) -> crate::error::Result<ProviderKind> {
    match kind {
        "openai" => Ok(ProviderKind::OpenAi),
        "anthropic" => Ok(ProviderKind::Anthropic),
        other => {
            crate::settings_bail!("unknown LLM provider kind '{other}' (use openai or anthropic)")
        }
    }
}

fn default_base_url(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::OpenAi => "https://api.openai.com/v1",
        ProviderKind::Anthropic => "https://api.anthropic.com",
    }
}

fn parse_strategy(s: &str) -> crate::error::Result<Strategy> {
    match s {
        "rule" => Ok(Strategy::Rule),
        "llm_first" | "llm-first" => Ok(Strategy::LlmFirst),
        "rule_first" | "rule-first" => Ok(Strategy::RuleFirst),
        other => crate::settings_bail!(
            "unknown planner strategy '{other}' (use rule, llm_first or rule_first)"
        ),
    }
}

/// Name of the provider configured by the `CRANE_LLM_*` environment variables.
const ENV_PROVIDER: &str = "primary";

/// The API key of a `[[llm.providers]]` entry: `api_key`, else the variable `api_key_env` names.
fn file_key(p: &ProviderFile) -> crate::error::Result<Option<String>> {
    Ok(match (&p.api_key, &p.api_key_env) {
        (Some(k), _) => Some(k.expose().to_owned()),
        (None, Some(var)) => Some(std::env::var(var).with_context(|| {
            format!(
                "provider {}: environment variable {var} (api_key_env) is not set",
                p.name
            )
        })?),
        (None, None) => None,
    })
}

/// Modes, timeouts, retries and breaker of a `[[llm.providers]]` entry.
fn apply_settings(config: &mut ProviderConfig, p: &ProviderFile) -> crate::error::Result<()> {
    if let Some(modes) = &p.modes {
        config.modes = modes
            .iter()
            .map(|m| {
                m.parse::<StructuredMode>().map_err(|_| {
                    crate::settings_err!("provider {}: unknown mode '{m}' (use json_schema, json_object, tools or prompt)", p.name)
                })
            })
            .collect::<crate::error::Result<_>>()?;
    }
    if let Some(ms) = p.timeout_ms {
        config.request_timeout = Duration::from_millis(ms);
    }
    if let Some(stream) = p.stream {
        config.stream = stream;
    }
    if let Some(ms) = p.connect_timeout_ms {
        config.connect_timeout = Duration::from_millis(ms);
    }
    config.retry = RetryConfig {
        max_retries: p.max_retries.unwrap_or(config.retry.max_retries),
        ..config.retry.clone()
    };
    config.breaker = BreakerConfig {
        consecutive_failures: p
            .breaker_failures
            .unwrap_or(config.breaker.consecutive_failures),
        cooldown: p
            .breaker_cooldown_ms
            .map_or(config.breaker.cooldown, Duration::from_millis),
        ..config.breaker.clone()
    };
    Ok(())
}

/// Builds the planner chain from the file sections, the environment and the strategy flag.
pub fn build(
    planner: &PlannerFile,
    llm: &LlmFile,
    env: &LlmEnv,
    strategy_flag: Option<&str>,
) -> crate::error::Result<PlanningConfig> {
    let providers = provider_configs(llm, env)?;
    let tiers = tiers(llm);
    chain(planner, providers, &tiers, strategy_flag)
}

/// A provider that cannot be built, said in crane's configuration terms.
pub fn provider_error(name: &str, e: &crane_llm::LlmError) -> crate::error::SettingsError {
    crate::settings_err!("LLM provider {name}: {}", e.message)
}

/// Every configured provider: the `CRANE_LLM_*` one (`primary`) first, then
/// `[[llm.providers]]` in order.
pub fn provider_configs(llm: &LlmFile, env: &LlmEnv) -> crate::error::Result<Vec<ProviderConfig>> {
    let pricing: HashMap<String, Pricing> = llm
        .pricing
        .iter()
        .map(|(model, p)| {
            (
                model.clone(),
                Pricing {
                    input_per_million: p.input_per_million,
                    output_per_million: p.output_per_million,
                },
            )
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = llm.providers.iter().find(|p| !seen.insert(p.name.as_str())) {
        crate::settings_bail!(
            "[[llm.providers]]: the name \"{}\" is used more than once; provider names must be unique \
             (they name the layer in plan records, metrics and circuit breakers)",
            dup.name
        );
    }
    let mut providers = Vec::new();
    // The environment's provider is `primary`. A `[[llm.providers]]` entry of that name tunes
    // it (timeouts, retries, breaker, modes); the environment wins for what both set.
    let env_entry = if env.is_set() {
        llm.providers.iter().find(|p| p.name == ENV_PROVIDER)
    } else {
        None
    };
    if env.is_set() {
        let kind_text = env
            .provider
            .as_deref()
            .or(env_entry.map(|e| e.kind.as_str()))
            .unwrap_or("openai");
        let kind = parse_kind(kind_text).context("CRANE_LLM_PROVIDER")?;
        let Some(model) = env
            .model
            .clone()
            .or_else(|| env_entry.and_then(|e| e.model.clone()))
        else {
            crate::settings_bail!(
                "CRANE_LLM_MODEL is not set: name the model to plan with (e.g. gpt-4o-mini, or the alias your local server serves)"
            );
        };
        let base_url = env
            .base_url
            .clone()
            .or_else(|| env_entry.and_then(|e| e.base_url.clone()))
            .unwrap_or_else(|| default_base_url(kind).to_owned());
        let mut config = ProviderConfig::new(ENV_PROVIDER, kind, base_url, model);
        let key = match (&env.api_key, env_entry) {
            (Some(key), _) => Some(key.clone()),
            (None, Some(entry)) => file_key(entry)?,
            (None, None) => None,
        };
        config.api_key = key.map(ApiKey::new);
        if let Some(entry) = env_entry {
            apply_settings(&mut config, entry)?;
        }
        config.pricing = pricing.clone();
        providers.push(config);
    }
    for p in &llm.providers {
        if env_entry.is_some_and(|e| std::ptr::eq(e, p)) {
            continue;
        }
        let kind = parse_kind(&p.kind).with_context(|| format!("[[llm.providers]] {}", p.name))?;
        let base_url = p
            .base_url
            .clone()
            .unwrap_or_else(|| default_base_url(kind).to_owned());
        let Some(model) = p.model.clone() else {
            crate::settings_bail!("[[llm.providers]] {}: model is not set", p.name);
        };
        let mut config = ProviderConfig::new(p.name.clone(), kind, base_url, model);
        config.api_key = file_key(p)?.map(ApiKey::new);
        apply_settings(&mut config, p)?;
        config.pricing = pricing.clone();
        providers.push(config);
    }
    if let Some(stream) = env.stream {
        for config in &mut providers {
            config.stream = stream;
        }
    }
    Ok(providers)
}

pub fn tiers(llm: &LlmFile) -> Vec<Tier> {
    llm.tiers
        .iter()
        .map(|t| Tier {
            name: t.name.clone(),
            model: t.model.clone(),
            max_complexity: t.max_complexity,
        })
        .collect()
}

/// The default chain over `providers`.
fn chain(
    planner: &PlannerFile,
    providers: Vec<ProviderConfig>,
    tiers: &[Tier],
    strategy_flag: Option<&str>,
) -> crate::error::Result<PlanningConfig> {
    let strategy = match strategy_flag.or(planner.strategy.as_deref()) {
        Some(s) => parse_strategy(s)?,
        None if providers.is_empty() => Strategy::Rule,
        None => Strategy::LlmFirst,
    };
    if strategy != Strategy::Rule && providers.is_empty() {
        crate::settings_bail!(
            "planner strategy needs an LLM: set CRANE_LLM_BASE_URL/CRANE_LLM_MODEL or add [[llm.providers]] to crane.toml"
        );
    }
    let layers = providers
        .into_iter()
        .map(|config| {
            let name = config.name.clone();
            let provider = Provider::new(config).map_err(|e| provider_error(&name, &e))?;
            if let Some(host) = provider.missing_key_host() {
                tracing::error!(
                    provider = %name,
                    "{host} needs an API key and none is configured: its LLM calls will be \
                     refused (401) and fail the runs; set CRANE_LLM_API_KEY (the environment's \
                     provider) or api_key_env / api_key in [[llm.providers]]"
                );
            }
            Ok(LlmLayerConfig {
                provider,
                template: PromptTemplate::builtin(),
                few_shot: planner.few_shot.unwrap_or(true),
                temperature: Some(planner.temperature.unwrap_or(0.0)),
                max_tokens: Some(planner.max_tokens.unwrap_or(512)),
                tiers: tiers.to_vec(),
            })
        })
        .collect::<crate::error::Result<Vec<_>>>()?;
    let defaults = PlanningConfig::default();
    Ok(PlanningConfig {
        strategy,
        layers,
        cache_capacity: planner.cache_capacity.unwrap_or(defaults.cache_capacity),
        cache_ttl: planner
            .cache_ttl_secs
            .map_or(defaults.cache_ttl, Duration::from_secs),
        deadline: planner
            .deadline_ms
            .map_or(defaults.deadline, Duration::from_millis),
        fallback_on_auth_error: planner.fallback_on_auth_error.unwrap_or(false),
        rule_fallback: true,
        budget: planner.budget()?,
    })
}
