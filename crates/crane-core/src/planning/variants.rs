//! Planner variants: named, versioned planner configurations (rule, LLM, or rule-first
//! hybrid; provider, model or tier, temperature, max tokens, prompt template, few-shot
//! setting, fallback chain) and the set a runtime plans with.
//!
//! A run names a variant or an alias (`production`, `candidate`, any name); with neither, the
//! `production` alias decides, else the default variant (the chain configured by `[planner]`
//! and the `CRANE_LLM_*` environment). Aliases live in the store and are moved without a
//! restart: [`Planners::set_aliases`] swaps the in-memory copy. Each variant has its own
//! [`Planning`] chain (and plan cache); statistics are shared.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::stats::PlannerStats;
use super::{Allowance, PlanError, Planning, Spend, Strategy};
use crate::domain::{LayerFailure, Plan, PromptRef, VariantRef};
use crate::tools::ToolRegistry;

/// The alias that plans runs which name no planner.
pub const PRODUCTION: &str = "production";
/// The built-in rule planner variant.
pub const RULE: &str = "rule";
/// The variant built from `[planner]` and the `CRANE_LLM_*` environment when an LLM is set.
pub const DEFAULT: &str = "default";

/// What kind of planner a variant is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VariantKind {
    /// The deterministic rule planner.
    Rule,
    /// An LLM planner.
    Llm,
    /// The rule planner for what it fully understands; the LLM for the rest.
    RuleFirst,
}

impl VariantKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rule => "rule",
            Self::Llm => "llm",
            Self::RuleFirst => "rule-first",
        }
    }

    /// The planning strategy of this kind.
    pub fn strategy(self) -> Strategy {
        match self {
            Self::Rule => Strategy::Rule,
            Self::Llm => Strategy::LlmFirst,
            Self::RuleFirst => Strategy::RuleFirst,
        }
    }

    /// The kind of a strategy (for the implicit default variant).
    pub fn of(strategy: Strategy) -> Self {
        match strategy {
            Strategy::Rule => Self::Rule,
            Strategy::LlmFirst => Self::Llm,
            Strategy::RuleFirst => Self::RuleFirst,
        }
    }
}

impl std::str::FromStr for VariantKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rule" => Ok(Self::Rule),
            "llm" => Ok(Self::Llm),
            "rule-first" | "rule_first" => Ok(Self::RuleFirst),
            other => Err(format!(
                "unknown planner kind '{other}' (use rule, llm or rule-first)"
            )),
        }
    }
}

/// A variant's declaration, as listed by `GET /planners`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantSpec {
    pub name: String,
    pub kind: VariantKind,
    /// Semantic version; bump it whenever the declaration changes.
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The `[[llm.providers]]` entry (or `primary`, the `CRANE_LLM_*` provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The model (overrides the provider's and disables tier routing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// A `[[llm.tiers]]` name: plan with that tier's model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The prompt template (LLM kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<PromptRef>,
    /// Whether the prompt shows worked examples.
    #[serde(default)]
    pub few_shot: bool,
    /// Variants tried in order when this one cannot plan.
    #[serde(default)]
    pub fallback: Vec<String>,
    /// Implicit variants (`rule`, `default`) come from the binary and the environment, not
    /// from a declaration; their version is not registered.
    #[serde(default)]
    pub builtin: bool,
}

impl VariantSpec {
    /// sha256 of everything that changes how the variant plans (not its name, version or
    /// description): a declaration that changes needs a new version.
    pub fn config_hash(&self) -> String {
        let mut body = self.clone();
        body.name.clear();
        body.version.clear();
        body.description = None;
        let text = serde_json::to_string(&body).unwrap_or_default();
        super::prompt::content_hash(&text)
    }

    /// The built-in rule variant.
    pub fn rule() -> Self {
        Self {
            name: RULE.into(),
            kind: VariantKind::Rule,
            version: crane_rules::PLANNER_VERSION.into(),
            description: Some("the deterministic rule planner".into()),
            provider: None,
            model: None,
            tier: None,
            temperature: None,
            max_tokens: None,
            prompt: None,
            few_shot: false,
            fallback: Vec::new(),
            builtin: true,
        }
    }
}

/// A variant and its planner chain.
pub struct Variant {
    pub spec: VariantSpec,
    planning: Planning,
}

impl Variant {
    pub fn new(spec: VariantSpec, planning: Planning) -> Self {
        Self { spec, planning }
    }

    /// The variant's planner chain.
    pub fn planning(&self) -> &Planning {
        &self.planning
    }
}

/// Why a set of variants is inconsistent.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VariantError {
    #[error("planner variant '{0}' is declared more than once; variant names must be unique")]
    Duplicate(String),
    #[error(
        "planner variant '{variant}' falls back to '{fallback}', which is not a variant; known variants: {known}"
    )]
    UnknownFallback {
        variant: String,
        fallback: String,
        known: String,
    },
    #[error("planner variant '{0}' lists itself as its fallback")]
    SelfFallback(String),
    #[error("the default planner variant '{0}' is not declared")]
    UnknownDefault(String),
}

/// The variants a runtime plans with, the default, and the aliases.
pub struct Planners {
    registry: Arc<ToolRegistry>,
    variants: Vec<Variant>,
    index: HashMap<String, usize>,
    default: usize,
    aliases: RwLock<BTreeMap<String, String>>,
    stats: Arc<PlannerStats>,
}

impl Planners {
    /// A set of variants; `default` plans runs that name no planner while no `production`
    /// alias is set. The built-in `rule` variant is added when missing.
    pub fn new(
        registry: Arc<ToolRegistry>,
        variants: Vec<Variant>,
        default: &str,
    ) -> Result<Self, VariantError> {
        let stats = Arc::new(PlannerStats::default());
        let mut list = Vec::new();
        let mut index = HashMap::new();
        let mut all = variants;
        if !all.iter().any(|v| v.spec.name == RULE) {
            all.insert(
                0,
                Variant::new(VariantSpec::rule(), Planning::new(registry.clone())),
            );
        }
        for mut v in all {
            if index.contains_key(&v.spec.name) {
                return Err(VariantError::Duplicate(v.spec.name));
            }
            v.planning.share_stats(stats.clone());
            index.insert(v.spec.name.clone(), list.len());
            list.push(v);
        }
        let known = || {
            list.iter()
                .map(|v: &Variant| v.spec.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        for v in &list {
            for f in &v.spec.fallback {
                if f == &v.spec.name {
                    return Err(VariantError::SelfFallback(f.clone()));
                }
                if !index.contains_key(f) {
                    return Err(VariantError::UnknownFallback {
                        variant: v.spec.name.clone(),
                        fallback: f.clone(),
                        known: known(),
                    });
                }
            }
        }
        let default = *index
            .get(default)
            .ok_or_else(|| VariantError::UnknownDefault(default.to_owned()))?;
        Ok(Self {
            registry,
            variants: list,
            index,
            default,
            aliases: RwLock::new(BTreeMap::new()),
            stats,
        })
    }

    /// One chain as the default variant (`rule` for the rule planner, else `default`, with
    /// the built-in `rule` variant beside it).
    pub fn single(planning: Planning) -> Self {
        let registry = planning.registry().clone();
        let stats = Arc::new(PlannerStats::default());
        let kind = VariantKind::of(planning.strategy());
        let mut variants = Vec::new();
        if kind != VariantKind::Rule {
            variants.push(Variant::new(
                VariantSpec::rule(),
                Planning::new(registry.clone()),
            ));
        }
        let spec = if kind == VariantKind::Rule {
            VariantSpec::rule()
        } else {
            VariantSpec {
                name: DEFAULT.into(),
                kind,
                version: env!("CARGO_PKG_VERSION").into(),
                description: Some("the planner chain of [planner] and CRANE_LLM_*".into()),
                ..VariantSpec::rule()
            }
        };
        variants.push(Variant::new(spec, planning));
        // Distinct names, no fallbacks, the default present: nothing for `new` to refuse.
        for v in &mut variants {
            v.planning.share_stats(stats.clone());
        }
        let index: HashMap<String, usize> = variants
            .iter()
            .enumerate()
            .map(|(i, v)| (v.spec.name.clone(), i))
            .collect();
        Self {
            registry,
            default: variants.len() - 1,
            variants,
            index,
            aliases: RwLock::new(BTreeMap::new()),
            stats,
        }
    }

    /// The tool registry plans are validated against.
    pub fn registry(&self) -> &Arc<ToolRegistry> {
        &self.registry
    }

    /// Statistics of every variant (`GET /metrics/planner`).
    pub fn stats(&self) -> &PlannerStats {
        &self.stats
    }

    /// Every variant, in declaration order (`rule` first unless declared).
    pub fn variants(&self) -> &[Variant] {
        &self.variants
    }

    /// The variant named `name`.
    pub fn get(&self, name: &str) -> Option<&Variant> {
        self.index.get(name).map(|&i| &self.variants[i])
    }

    /// The default variant.
    pub fn default_variant(&self) -> &Variant {
        &self.variants[self.default]
    }

    /// The aliases (alias → variant name).
    pub fn aliases(&self) -> BTreeMap<String, String> {
        self.aliases.read().map(|a| a.clone()).unwrap_or_default()
    }

    /// Replaces the aliases (after a move, or when the store changed).
    pub fn set_aliases(&self, aliases: BTreeMap<String, String>) {
        if let Ok(mut a) = self.aliases.write() {
            *a = aliases;
        }
    }

    fn unknown(&self, name: &str) -> PlanError {
        PlanError::UnknownPlanner {
            name: name.to_owned(),
            known: self
                .variants
                .iter()
                .map(|v| v.spec.name.clone())
                .collect::<Vec<_>>()
                .join(", "),
            aliases: {
                let a = self.aliases();
                if a.is_empty() {
                    "none".to_owned()
                } else {
                    a.iter()
                        .map(|(k, v)| format!("{k} → {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            },
        }
    }

    /// The variant a run plans with: `requested` (a variant, else an alias), or the
    /// `production` alias, or the default variant. Returns the alias used, if any.
    pub fn resolve(
        &self,
        requested: Option<&str>,
    ) -> Result<(&Variant, Option<String>), PlanError> {
        let aliased = |alias: &str| -> Option<Result<(&Variant, Option<String>), PlanError>> {
            let target = self.aliases.read().ok()?.get(alias).cloned()?;
            Some(
                self.get(&target)
                    .map(|v| (v, Some(alias.to_owned())))
                    .ok_or_else(|| PlanError::Rejected {
                        message: format!(
                            "alias '{alias}' points to planner variant '{target}', which this server's configuration does not declare; declare it or move the alias (crane prompts promote VARIANT --alias {alias})"
                        ),
                    }),
            )
        };
        match requested.map(str::trim).filter(|r| !r.is_empty()) {
            Some(name) => {
                if let Some(v) = self.get(name) {
                    return Ok((v, None));
                }
                aliased(name).unwrap_or_else(|| Err(self.unknown(name)))
            }
            None => aliased(PRODUCTION).unwrap_or(Ok((self.default_variant(), None))),
        }
    }

    /// Where the semantic plan cache keeps the plans of `requested`'s variant for `prompt`:
    /// the variant's identity (name, version, and its first LLM layer's provider, model and
    /// template hash), with the variant as plans record it. `None` when the variant plans
    /// without an LLM, or plans `prompt` with the rule planner first (rule-first chains).
    pub fn cache_scope(
        &self,
        requested: Option<&str>,
        prompt: &str,
    ) -> Option<(String, VariantRef)> {
        let (variant, alias) = self.resolve(requested).ok()?;
        let identity = variant.planning.cache_identity(prompt)?;
        Some((
            format!("{}@{}/{identity}", variant.spec.name, variant.spec.version),
            VariantRef {
                name: variant.spec.name.clone(),
                version: variant.spec.version.clone(),
                alias,
                fallback: None,
            },
        ))
    }

    /// Plans `prompt` with the resolved variant, then its fallbacks in order. Records the
    /// variant (and alias) on the plan. A misconfigured provider stops the chain.
    pub async fn plan(
        &self,
        requested: Option<&str>,
        prompt: &str,
        traceparent: Option<&str>,
    ) -> Result<Plan, PlanError> {
        self.plan_within(requested, prompt, traceparent, &Allowance::Unlimited)
            .await
    }

    /// Like [`Planners::plan`] within what the run's tenant's spend budgets leave (see
    /// [`Planning::plan_within`]); every variant tried shares the allowance.
    pub async fn plan_within(
        &self,
        requested: Option<&str>,
        prompt: &str,
        traceparent: Option<&str>,
        allowance: &Allowance,
    ) -> Result<Plan, PlanError> {
        self.plan_streamed(requested, prompt, traceparent, allowance, None)
            .await
    }

    /// Whether planning `requested` can hand out steps early (a variant of its chain has an
    /// LLM layer that asks for streamed answers). False for a name that does not resolve.
    pub fn streams(&self, requested: Option<&str>) -> bool {
        self.resolve(requested).is_ok_and(|(variant, _)| {
            std::iter::once(variant)
                .chain(variant.spec.fallback.iter().filter_map(|n| self.get(n)))
                .any(|v| v.planning.streams())
        })
    }

    /// Like [`Planners::plan_within`], handing the steps of a streamed LLM answer to `sink` as
    /// they arrive (see [`Planning::plan_streamed`]). Once a step went out, no fallback
    /// variant is tried.
    pub async fn plan_streamed(
        &self,
        requested: Option<&str>,
        prompt: &str,
        traceparent: Option<&str>,
        allowance: &Allowance,
        sink: Option<&super::StepSink>,
    ) -> Result<Plan, PlanError> {
        let (variant, alias) = self.resolve(requested)?;
        let chain = std::iter::once(variant).chain(
            variant
                .spec
                .fallback
                .iter()
                .filter_map(|name| self.get(name)),
        );
        let mut failures: Vec<LayerFailure> = Vec::new();
        // What the variants that failed were billed: it costs this run whoever plans it.
        let mut spend = Spend::default();
        for (i, v) in chain.enumerate() {
            // The planning budget is per run: earlier variants' spend counts.
            match v
                .planning
                .plan_streamed(prompt, traceparent, spend, allowance, sink)
                .await
            {
                Ok(mut plan) => {
                    if !spend.is_empty() {
                        let planner = &mut plan.planner;
                        spend.add(Spend {
                            usage: planner.usage.unwrap_or_default(),
                            cost_usd: planner.cost_usd,
                        });
                        (planner.usage, planner.cost_usd) = spend.record();
                    }
                    plan.planner.variant = Some(VariantRef {
                        name: variant.spec.name.clone(),
                        version: variant.spec.version.clone(),
                        alias,
                        fallback: (i > 0).then(|| format!("{}@{}", v.spec.name, v.spec.version)),
                    });
                    if !failures.is_empty() {
                        failures.append(&mut plan.planner.attempts);
                        plan.planner.attempts = failures;
                    }
                    return Ok(plan);
                }
                Err(PlanError::Misconfigured {
                    failure,
                    earlier,
                    spend: own,
                }) => {
                    // Loud, not degraded; the run still records what came before and its cost.
                    spend.add(own);
                    failures.extend(earlier);
                    return Err(PlanError::Misconfigured {
                        failure,
                        earlier: failures,
                        spend,
                    });
                }
                Err(PlanError::InvalidAfterStep {
                    step,
                    failure,
                    earlier,
                    spend: own,
                }) => {
                    // Steps went out (and may have run): no other variant may plan this run.
                    spend.add(own);
                    failures.extend(earlier);
                    return Err(PlanError::InvalidAfterStep {
                        step,
                        failure,
                        earlier: failures,
                        spend,
                    });
                }
                Err(e) if variant.spec.fallback.is_empty() => return Err(e),
                Err(e) => {
                    spend.add(e.spend());
                    failures.push(LayerFailure {
                        layer: format!("variant:{}", v.spec.name),
                        category: match &e {
                            PlanError::Rejected { .. } => "rejected",
                            PlanError::Invalid { .. } => "invalid_plan",
                            _ => "exhausted",
                        }
                        .to_owned(),
                        message: e.to_string(),
                    });
                }
            }
        }
        Err(PlanError::Exhausted { failures, spend })
    }

    /// Validates a plan supplied by the caller.
    pub fn client_plan(
        &self,
        steps: Vec<(String, serde_json::Value, String)>,
    ) -> Result<Plan, PlanError> {
        self.default_variant().planning.client_plan(steps)
    }
}
