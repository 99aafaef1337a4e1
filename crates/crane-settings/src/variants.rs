//! `[[planners]]` and `[registry]` in crane.toml: declared planner variants and where prompt
//! templates live. Builds the [`Planners`] set a runtime plans with: the built-in `rule`
//! variant, the `default` chain (`[planner]` + `CRANE_LLM_*`) when an LLM is configured, and
//! every declared variant with its own model or tier, prompt template,
//! temperature, max tokens, few-shot setting and fallback list. Variants naming the same
//! provider share its connection pool and circuit breaker ([`Provider::with_model`]).
//!
//! ```toml
//! [registry]
//! prompts_dir = "prompts"        # NAME-VERSION.jinja files; default ./prompts when it exists
//!
//! [[planners]]
//! name = "llm-small"
//! kind = "llm"                   # rule | llm | rule-first
//! version = "1.0.0"              # bump whenever this block changes
//! provider = "primary"           # [[llm.providers]] name; primary = CRANE_LLM_*
//! model = "gpt-4o-mini"          # or tier = "fast"
//! prompt = "planner@1.0.0"
//! temperature = 0.0
//! max_tokens = 512
//! few_shot = true
//! fallback = ["rule"]            # the default for llm and rule-first kinds
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Context;
use crane_core::planning::prompt_library::PromptLibrary;
use crane_core::planning::routing::Tier;
use crane_core::planning::variants::{DEFAULT, RULE};
use crane_core::planning::{
    LlmLayerConfig, Planners, Planning, PlanningConfig, Strategy, Variant, VariantKind, VariantSpec,
};
use crane_core::tools::ToolRegistry;
use crane_llm::Provider;
use serde::Deserialize;

use crate::planner::tiers;
use crate::planner::{LlmFile, PlannerFile};

/// One `[[planners]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantFile {
    pub name: String,
    /// `rule`, `llm` or `rule-first`.
    pub kind: String,
    /// Semantic version of this declaration.
    pub version: String,
    pub description: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub tier: Option<String>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    /// `NAME@VERSION` of a prompt template.
    pub prompt: Option<String>,
    pub few_shot: Option<bool>,
    /// Variants tried in order when this one cannot plan.
    pub fallback: Option<Vec<String>>,
}

/// `[registry]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryFile {
    /// Directory of `NAME-VERSION.jinja` prompt templates (`CRANE_PROMPTS_DIR`).
    pub prompts_dir: Option<PathBuf>,
    /// How often `crane serve` reloads aliases from the store (moves made by another
    /// process). Default 1000 ms.
    pub alias_refresh_ms: Option<u64>,
}

impl RegistryFile {
    /// The alias reload interval.
    pub fn alias_refresh(&self) -> Duration {
        Duration::from_millis(self.alias_refresh_ms.unwrap_or(500).max(50))
    }
}

/// What planner variants are built from: `[planner]`, `[llm]`, the strategy flag, `[[planners]]`
/// and `[registry]` (a view of the settings).
#[derive(Debug, Clone, Copy)]
pub struct PlanningInputs<'a> {
    pub planner: &'a PlannerFile,
    pub llm: &'a LlmFile,
    pub strategy: Option<&'a str>,
    pub variants: &'a [VariantFile],
    pub registry: &'a RegistryFile,
}

impl PlanningInputs<'_> {
    /// The planner chain: the rule planner, or LLM layers when configured.
    pub fn planning(&self) -> crate::error::Result<crane_core::planning::PlanningConfig> {
        crate::planner::build(
            self.planner,
            self.llm,
            &crate::planner::LlmEnv::from_env(),
            self.strategy,
        )
    }
}

/// The prompt templates: the built-in one plus the prompts directory (`[registry]
/// prompts_dir`, else `./prompts` when it exists).
pub fn library(settings: &PlanningInputs<'_>) -> crate::error::Result<PromptLibrary> {
    let dir = match &settings.registry.prompts_dir {
        Some(dir) => {
            if !dir.is_dir() {
                crate::settings_bail!(
                    "the prompts directory {} does not exist; create it or fix [registry] prompts_dir / CRANE_PROMPTS_DIR",
                    dir.display()
                );
            }
            Some(dir.clone())
        }
        None => Some(PathBuf::from("prompts")).filter(|d| d.is_dir()),
    };
    Ok(match dir {
        Some(dir) => PromptLibrary::load(&dir)?,
        None => PromptLibrary::builtin(),
    })
}

fn check_name(name: &str) -> crate::error::Result<()> {
    if !crane_core::runtime::registry::is_valid_name(name) {
        crate::settings_bail!(
            "invalid planner variant name '{name}': use 1 to 64 letters, digits, '-', '_' or '.', starting with a letter"
        );
    }
    if name == RULE || name == DEFAULT {
        crate::settings_bail!(
            "the planner variant name '{name}' is built in ({RULE}: the rule planner; {DEFAULT}: the [planner] chain); pick another name"
        );
    }
    Ok(())
}

/// The spec of a `[[planners]]` entry (before its chain is built).
fn spec(
    v: &VariantFile,
    library: &PromptLibrary,
    settings: &PlanningInputs<'_>,
) -> crate::error::Result<VariantSpec> {
    check_name(&v.name)?;
    let kind: VariantKind = v
        .kind
        .parse()
        .map_err(|e: String| crate::error::SettingsError::new(e))?;
    semver::Version::parse(&v.version).map_err(|e| {
        crate::settings_err!(
            "version '{}' is not a semantic version ({e}); use MAJOR.MINOR.PATCH, e.g. 1.0.0",
            v.version
        )
    })?;
    if let Some(t) = v.temperature
        && !(0.0..=2.0).contains(&t)
    {
        crate::settings_bail!("temperature {t} is out of range; use 0.0 to 2.0");
    }
    if v.max_tokens == Some(0) {
        crate::settings_bail!("max_tokens must be at least 1");
    }
    if v.model.is_some() && v.tier.is_some() {
        crate::settings_bail!("set model or tier, not both");
    }
    let llm_settings = [
        ("provider", v.provider.is_some()),
        ("model", v.model.is_some()),
        ("tier", v.tier.is_some()),
        ("temperature", v.temperature.is_some()),
        ("max_tokens", v.max_tokens.is_some()),
        ("prompt", v.prompt.is_some()),
        ("few_shot", v.few_shot.is_some()),
    ];
    if kind == VariantKind::Rule
        && let Some((key, _)) = llm_settings.iter().find(|(_, set)| *set)
    {
        crate::settings_bail!(
            "kind = \"rule\" takes no {key} (the rule planner calls no model); remove it or use kind = \"llm\""
        );
    }
    let prompt = match kind {
        VariantKind::Rule => None,
        _ => {
            let reference = v.prompt.clone().unwrap_or_else(|| {
                let t = crane_core::planning::prompt::PromptTemplate::builtin();
                format!("{}@{}", t.name, t.version)
            });
            Some(library.get(&reference)?.template.reference())
        }
    };
    let default_fallback = if kind == VariantKind::Rule {
        Vec::new()
    } else {
        vec![RULE.to_owned()]
    };
    Ok(VariantSpec {
        name: v.name.clone(),
        kind,
        version: v.version.clone(),
        description: v.description.clone(),
        provider: v.provider.clone(),
        model: v.model.clone(),
        tier: v.tier.clone(),
        temperature: match kind {
            VariantKind::Rule => None,
            _ => Some(
                v.temperature
                    .or(settings.planner.temperature.map(f64::from))
                    .unwrap_or(0.0),
            ),
        },
        max_tokens: match kind {
            VariantKind::Rule => None,
            _ => Some(v.max_tokens.or(settings.planner.max_tokens).unwrap_or(512)),
        },
        prompt,
        few_shot: kind != VariantKind::Rule
            && v.few_shot.or(settings.planner.few_shot).unwrap_or(true),
        fallback: v.fallback.clone().unwrap_or(default_fallback),
        builtin: false,
    })
}

/// Builds a declared variant's planner chain.
fn chain(
    spec: &VariantSpec,
    settings: &PlanningInputs<'_>,
    library: &PromptLibrary,
    registry: &Arc<ToolRegistry>,
    providers: &[&Provider],
    all_tiers: &[Tier],
) -> crate::error::Result<Planning> {
    if spec.kind == VariantKind::Rule {
        return Ok(Planning::new(registry.clone()));
    }
    let names = || {
        providers
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let base = match &spec.provider {
        Some(name) => providers
            .iter()
            .find(|p| p.name() == name)
            .with_context(|| {
                format!(
                    "provider '{name}' is not configured (configured: {}); add it to [[llm.providers]] or set CRANE_LLM_* for 'primary'",
                    if providers.is_empty() { "none".to_owned() } else { names() }
                )
            })?,
        None => providers.first().with_context(|| {
            "an LLM variant needs a provider: set CRANE_LLM_BASE_URL/CRANE_LLM_MODEL or add [[llm.providers]]".to_owned()
        })?,
    };
    let (model, tiers) =
        match (&spec.model, &spec.tier) {
            (Some(model), _) => (model.clone(), Vec::new()),
            (None, Some(tier)) => {
                let t = all_tiers.iter().find(|t| &t.name == tier).with_context(|| {
                format!(
                    "tier '{tier}' is not configured (configured: {}); add it to [[llm.tiers]]",
                    all_tiers
                        .iter()
                        .map(|t| t.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
                (t.model.clone(), Vec::new())
            }
            (None, None) => (base.model().to_owned(), all_tiers.to_vec()),
        };
    // A handle on the default chain's client for this provider with the variant's model: one
    // connection pool and one circuit breaker per provider, however many variants use it.
    let provider = base
        .with_model(&model)
        .map_err(|e| crate::planner::provider_error(base.name(), &e))?;
    let template = match &spec.prompt {
        Some(p) => library
            .get(&format!("{}@{}", p.name, p.version))?
            .template
            .clone(),
        None => crane_core::planning::prompt::PromptTemplate::builtin(),
    };
    let defaults = PlanningConfig::default();
    let planner = &settings.planner;
    let config = PlanningConfig {
        strategy: match spec.kind {
            VariantKind::RuleFirst => Strategy::RuleFirst,
            _ => Strategy::LlmFirst,
        },
        layers: vec![LlmLayerConfig {
            provider,
            template,
            few_shot: spec.few_shot,
            temperature: spec.temperature.map(|t| t as f32),
            max_tokens: spec.max_tokens,
            tiers,
        }],
        cache_capacity: planner.cache_capacity.unwrap_or(defaults.cache_capacity),
        cache_ttl: planner
            .cache_ttl_secs
            .map_or(defaults.cache_ttl, Duration::from_secs),
        deadline: planner
            .deadline_ms
            .map_or(defaults.deadline, Duration::from_millis),
        fallback_on_auth_error: planner.fallback_on_auth_error.unwrap_or(false),
        rule_fallback: false,
        budget: planner.budget()?,
    };
    Ok(Planning::with_config(registry.clone(), config)?)
}

/// The planner variants and the prompt library of these settings.
pub fn build(
    settings: &PlanningInputs<'_>,
    registry: Arc<ToolRegistry>,
) -> crate::error::Result<(Planners, PromptLibrary)> {
    let library = library(settings)?;
    let default_config = settings.planning()?;
    let has_llm = default_config.strategy != Strategy::Rule;
    // Declared variants use the default chain's provider clients (every configured provider
    // has a layer there, also in rule mode), so they are built before that chain is.
    let declared = {
        let providers: Vec<&Provider> = default_config.layers.iter().map(|l| &l.provider).collect();
        let all_tiers = tiers(settings.llm);
        settings
            .variants
            .iter()
            .map(|v| {
                let ctx = || format!("[[planners]] {}", v.name);
                let spec = spec(v, &library, settings).with_context(ctx)?;
                let planning = chain(&spec, settings, &library, &registry, &providers, &all_tiers)
                    .with_context(ctx)?;
                Ok(Variant::new(spec, planning))
            })
            .collect::<crate::error::Result<Vec<_>>>()?
    };
    let default_planning = Planning::with_config(registry.clone(), default_config)?;
    let mut variants = Vec::new();
    let default_name = if has_llm {
        let spec = VariantSpec {
            name: DEFAULT.into(),
            kind: VariantKind::of(default_planning.strategy()),
            version: env!("CARGO_PKG_VERSION").into(),
            description: Some("the planner chain of [planner] and CRANE_LLM_*".into()),
            prompt: Some(crane_core::planning::prompt::PromptTemplate::builtin().reference()),
            temperature: Some(f64::from(settings.planner.temperature.unwrap_or(0.0))),
            max_tokens: Some(settings.planner.max_tokens.unwrap_or(512)),
            few_shot: settings.planner.few_shot.unwrap_or(true),
            fallback: Vec::new(),
            ..VariantSpec::rule()
        };
        variants.push(Variant::new(spec, default_planning));
        DEFAULT
    } else {
        RULE
    };
    variants.extend(declared);
    let planners = Planners::new(registry, variants, default_name)?;
    Ok((planners, library))
}
