//! The planner registry at run time: registers the versions of prompt templates and declared
//! variants at start (refusing any whose content changed without a version bump), loads the
//! aliases from the store, moves and rolls them back (validated against the variants this
//! process knows), and keeps the in-memory aliases in step with the store so a move made by
//! another process (`crane prompts promote --data-dir ...`) takes effect without a restart.

use std::time::Duration;

use crate::planning::Planners;
use crate::planning::prompt_library::PromptLibrary;
use crate::store::{AliasMove, Registration, RollbackError, Store, StoreError};

use super::Runtime;

/// Why a registry operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    ChangedPrompt(Box<PromptChange>),
    #[error(
        "planner variant {name}@{version} changed since that version was registered on {registered_at}. Bump its version in crane.toml (e.g. version = \"{next}\") so runs planned before and after the change stay distinguishable"
    )]
    ChangedVariant {
        name: String,
        version: String,
        registered_at: String,
        next: String,
    },
    #[error("unknown planner variant '{name}'; known variants: {known}")]
    UnknownVariant { name: String, known: String },
    #[error(
        "'{0}' is a variant name; an alias must differ from every variant name so a planner name means one thing"
    )]
    AliasIsVariant(String),
    #[error(
        "invalid alias '{0}': use 1 to 64 letters, digits, '-', '_' or '.', starting with a letter"
    )]
    BadAlias(String),
    #[error("invalid note: {0}")]
    BadNote(String),
    #[error(transparent)]
    Rollback(#[from] RollbackError),
    #[error("cannot roll back: {0}")]
    RollbackRefused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A prompt template whose text changed under a registered version.
#[derive(Debug)]
pub struct PromptChange {
    pub name: String,
    pub version: String,
    pub source_path: String,
    pub registered_at: String,
    /// Short hashes: registered, current.
    pub old: String,
    pub new: String,
    /// The version to save the edit under.
    pub next: String,
}

impl std::fmt::Display for PromptChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            name,
            version,
            source_path,
            registered_at,
            old,
            new,
            next,
        } = self;
        write!(
            f,
            "prompt template {name}@{version} ({source_path}) changed since that version was registered on {registered_at} (sha256 {old}… → {new}…). A released version must never change: save the edit under a new version (e.g. {name}-{next}.jinja) and point the variant's prompt at {name}@{next}"
        )
    }
}

/// Longest alias note kept.
pub const MAX_NOTE_CHARS: usize = 1000;

fn short(hash: &str) -> String {
    hash.chars().take(12).collect()
}

fn next_patch(version: &str) -> String {
    semver::Version::parse(version)
        .map(|v| semver::Version::new(v.major, v.minor, v.patch + 1).to_string())
        .unwrap_or_else(|_| format!("{version}.1"))
}

/// Registers every template of `library` and every declared (non-built-in) variant of
/// `planners`. Returns `name@version` of what was registered for the first time; refuses
/// content that changed under a registered version (nothing is written for it).
pub async fn register_versions(
    store: &Store,
    planners: &Planners,
    library: &PromptLibrary,
) -> Result<Vec<String>, RegistryError> {
    let mut new = Vec::new();
    for entry in library.entries() {
        let t = &entry.template;
        match store
            .register_prompt(&t.name, &t.version, &t.hash, &entry.source)
            .await?
        {
            Registration::New => new.push(format!("prompt {}@{}", t.name, t.version)),
            Registration::Unchanged => {}
            Registration::Changed {
                registered_hash,
                registered_at,
            } => {
                return Err(RegistryError::ChangedPrompt(Box::new(PromptChange {
                    name: t.name.clone(),
                    version: t.version.clone(),
                    source_path: entry.source.clone(),
                    registered_at,
                    old: short(&registered_hash),
                    new: short(&t.hash),
                    next: next_patch(&t.version),
                })));
            }
        }
    }
    for v in planners.variants().iter().filter(|v| !v.spec.builtin) {
        let spec = &v.spec;
        let body = serde_json::to_string(spec).unwrap_or_default();
        match store
            .register_variant(&spec.name, &spec.version, &spec.config_hash(), &body)
            .await?
        {
            Registration::New => new.push(format!("variant {}@{}", spec.name, spec.version)),
            Registration::Unchanged => {}
            Registration::Changed { registered_at, .. } => {
                return Err(RegistryError::ChangedVariant {
                    name: spec.name.clone(),
                    version: spec.version.clone(),
                    registered_at,
                    next: next_patch(&spec.version),
                });
            }
        }
    }
    Ok(new)
}

/// Whether `name` is a valid variant or alias name: 1 to 64 letters, digits, `-`, `_` or `.`,
/// starting with a letter.
pub fn is_valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Checks an alias name.
pub fn check_alias(alias: &str) -> Result<(), RegistryError> {
    if is_valid_name(alias) {
        Ok(())
    } else {
        Err(RegistryError::BadAlias(alias.to_owned()))
    }
}

fn check_note(note: Option<&str>) -> Result<(), RegistryError> {
    match note {
        Some(n) if n.chars().count() > MAX_NOTE_CHARS => Err(RegistryError::BadNote(format!(
            "{} characters; the limit is {MAX_NOTE_CHARS}",
            n.chars().count()
        ))),
        _ => Ok(()),
    }
}

fn known(planners: &Planners) -> String {
    planners
        .variants()
        .iter()
        .map(|v| v.spec.name.clone())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Points `alias` at `variant` (which `planners` must know) and records the move.
pub async fn move_alias(
    store: &Store,
    planners: &Planners,
    alias: &str,
    variant: &str,
    note: Option<&str>,
) -> Result<AliasMove, RegistryError> {
    check_alias(alias)?;
    check_note(note)?;
    if planners.get(alias).is_some() {
        return Err(RegistryError::AliasIsVariant(alias.to_owned()));
    }
    if planners.get(variant).is_none() {
        return Err(RegistryError::UnknownVariant {
            name: variant.to_owned(),
            known: known(planners),
        });
    }
    let m = store.move_alias(alias, variant, note).await?;
    planners.set_aliases(store.aliases().await?);
    Ok(m)
}

/// Moves `alias` back to its previous target (which `planners` must know).
pub async fn rollback_alias(
    store: &Store,
    planners: &Planners,
    alias: &str,
    note: Option<&str>,
) -> Result<AliasMove, RegistryError> {
    check_alias(alias)?;
    check_note(note)?;
    let names: Vec<String> = planners
        .variants()
        .iter()
        .map(|v| v.spec.name.clone())
        .collect();
    let list = known(planners);
    let m = store
        .rollback_alias(alias, note, move |target| {
            if names.iter().any(|n| n == target) {
                Ok(())
            } else {
                Err(format!(
                    "the previous target '{target}' is not a variant of this configuration (known: {list}); promote a variant instead"
                ))
            }
        })
        .await?
        .map_err(RegistryError::RollbackRefused)?;
    planners.set_aliases(store.aliases().await?);
    Ok(m)
}

impl Runtime {
    /// Registers template and variant versions (see [`register_versions`]) and loads the
    /// aliases. Call once at start.
    pub async fn load_registry(
        &self,
        library: &PromptLibrary,
    ) -> Result<Vec<String>, RegistryError> {
        let new = register_versions(&self.inner.store, &self.inner.planners, library).await?;
        self.refresh_aliases().await?;
        Ok(new)
    }

    /// Reloads the aliases from the store.
    pub async fn refresh_aliases(&self) -> Result<(), StoreError> {
        let aliases = self.inner.store.aliases().await?;
        if aliases != self.inner.planners.aliases() {
            tracing::info!(?aliases, "planner aliases changed");
            self.inner.planners.set_aliases(aliases);
        }
        Ok(())
    }

    /// Reloads the aliases every `every`, so moves made by another process apply without a
    /// restart. Stops when the runtime is dropped.
    pub fn spawn_alias_refresh(&self, every: Duration) {
        let weak = std::sync::Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let runtime = Runtime { inner };
                if let Err(error) = runtime.refresh_aliases().await {
                    tracing::warn!(%error, "could not reload planner aliases");
                }
            }
        });
    }

    /// Points `alias` at `variant`.
    pub async fn move_alias(
        &self,
        alias: &str,
        variant: &str,
        note: Option<&str>,
    ) -> Result<AliasMove, RegistryError> {
        move_alias(
            &self.inner.store,
            &self.inner.planners,
            alias,
            variant,
            note,
        )
        .await
    }

    /// Moves `alias` back to its previous target.
    pub async fn rollback_alias(
        &self,
        alias: &str,
        note: Option<&str>,
    ) -> Result<AliasMove, RegistryError> {
        rollback_alias(&self.inner.store, &self.inner.planners, alias, note).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_names_are_checked() {
        for ok in ["production", "candidate", "exp-2.b_1"] {
            assert!(check_alias(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1st", "has space", "a/b", &"x".repeat(65)] {
            assert!(check_alias(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn next_patch_suggests_a_bump() {
        assert_eq!(next_patch("1.2.3"), "1.2.4");
        assert_eq!(next_patch("1.2.3-rc.1"), "1.2.4");
    }
}
