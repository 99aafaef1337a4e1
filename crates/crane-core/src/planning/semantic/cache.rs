//! The semantic plan cache as a process runs it: entries per tenant and planner scope, found
//! by an exact key first and then by the nearest prompt embeddings, served only through the
//! literal guard ([`super::guard`]).
//!
//! - Scope: an entry belongs to one tenant and one planner identity (variant, version,
//!   provider, model and prompt-template hash), so a new prompt version never gets an old
//!   version's plans and tenants never see each other's.
//! - Lookup: the exact key (scope + whitespace-normalised prompt) first, no embedding needed;
//!   then the prompt is embedded and the `CANDIDATES` nearest entries of the scope at or above
//!   the similarity threshold are tried in order; the first whose template re-binds to the
//!   prompt and validates is served. When every candidate is refused, the lookup is a refused
//!   near-hit (counted by reason) and the planner runs.
//! - Lifecycle: entries expire after the TTL (not served, then deleted); past the capacity the
//!   oldest are evicted. Entries are persisted (SQLite or PostgreSQL); every process catches up
//!   with the rows other replicas added every few seconds, and drops a tenant's entries when
//!   its generation moved (`DELETE /cache` on any replica).
//! - Only plans an LLM made for exactly this prompt and variant, of runs that completed, are
//!   remembered, and only when their template binds every literal (`NotCacheable` otherwise: the exact plan cache of the
//!   planner chain still has them).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::guard::Refusal;
use super::index::VectorIndex;
use super::template::PlanTemplate;
use crate::domain::PlanStep;
use crate::store::{CacheEntryRecord, Store, StoreError};
use crate::tools::ToolRegistry;

/// Nearest entries tried per lookup.
pub const CANDIDATES: usize = 4;
/// Rows read per round when catching up with the store.
const CATCH_UP_BATCH: usize = 5_000;

/// Sentence embeddings (crane-embed's model in the binary; a fake one in tests).
pub trait Embed: Send + Sync {
    /// The L2-normalised embedding of `text`.
    fn embed(&self, text: &str) -> Result<Vec<f32>, String>;
    fn dims(&self) -> usize;
    /// Tells two models apart: entries of another model are not loaded.
    fn model_id(&self) -> &str;
}

/// How the cache behaves.
#[derive(Debug, Clone)]
pub struct SemanticConfig {
    /// Least cosine similarity of a near hit worth trying.
    pub threshold: f32,
    /// How long an entry is served.
    pub ttl: Duration,
    /// Most entries held (over every tenant); the oldest go first.
    pub capacity: usize,
}

impl Default for SemanticConfig {
    fn default() -> Self {
        Self {
            threshold: DEFAULT_THRESHOLD,
            ttl: Duration::from_secs(7 * 24 * 3600),
            capacity: 100_000,
        }
    }
}

/// The default similarity threshold, chosen on data/paraphrases.jsonl with `crane bench-cache`
/// (docs/benchmarks.md): the guard served no wrong plan at any threshold from 0.50 to 0.95 (nor
/// with no threshold at all), so the threshold only trades lookups for hits — 0.50 serves
/// 51 of 74 paraphrases, 0.80 only 34.
pub const DEFAULT_THRESHOLD: f32 = 0.50;

/// What a lookup found.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// The plan to run. `exact`: the same prompt (no embedding needed).
    Hit {
        steps: Vec<PlanStep>,
        exact: bool,
        similarity: f32,
        rebound: bool,
    },
    /// Near entries were found but none could be served: the first one's refusal.
    Refused { refusal: Refusal, similarity: f32 },
    /// Nothing near enough.
    Miss,
}

/// The counters `GET /cache` reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CacheStats {
    pub enabled: bool,
    pub model: String,
    pub threshold: f32,
    pub entries: usize,
    pub hits_exact: u64,
    pub hits_semantic: u64,
    /// Of the semantic hits, those whose literals were re-bound to the new prompt.
    pub hits_rebound: u64,
    pub misses: u64,
    pub refused_near_hits: u64,
    /// Refused near-hits by reason.
    pub refused_by_reason: HashMap<String, u64>,
    pub mean_similarity_of_hits: Option<f64>,
    /// Plans the cache did not take because a literal could not be bound to the prompt.
    pub not_cacheable: u64,
    pub stored: u64,
}

#[derive(Debug)]
struct Entry {
    tenant: String,
    scope: String,
    key: String,
    template: PlanTemplate,
    expires_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Default)]
struct State {
    entries: HashMap<u64, Entry>,
    /// (tenant, key) → id.
    exact: HashMap<(String, String), u64>,
    /// (tenant, scope) → index of its entries.
    indexes: HashMap<(String, String), Arc<VectorIndex>>,
    /// Ids in the order they arrived (eviction order).
    order: VecDeque<u64>,
    last_id: i64,
    generations: HashMap<String, i64>,
}

#[derive(Default)]
struct Counters {
    hits_exact: AtomicU64,
    hits_semantic: AtomicU64,
    hits_rebound: AtomicU64,
    misses: AtomicU64,
    refused: AtomicU64,
    not_cacheable: AtomicU64,
    stored: AtomicU64,
    refused_by_reason: Mutex<HashMap<&'static str, u64>>,
    /// Sum of the similarities of semantic hits.
    similarity_sum: Mutex<f64>,
}

/// The semantic plan cache (see the module docs).
pub struct SemanticCache {
    embed: Arc<dyn Embed>,
    store: Arc<Store>,
    registry: Arc<ToolRegistry>,
    config: SemanticConfig,
    state: RwLock<State>,
    counters: Counters,
    /// Ids evicted for capacity, to delete from the store at the next maintenance.
    evicted: Mutex<Vec<i64>>,
}

/// The exact key of a prompt in a scope: sha256 of the exact plan cache's key (the scope and
/// the whitespace-normalised prompt; case kept: titles are case-sensitive).
pub fn exact_key(scope: &str, prompt: &str) -> String {
    Sha256::digest(crate::planning::cache::key(scope, prompt).as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_bytes(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

impl SemanticCache {
    /// The embedding model the cache uses (the failure analysis groups prompts with it).
    pub fn embedder(&self) -> Arc<dyn Embed> {
        self.embed.clone()
    }

    /// The cache over `store`, with the entries of `embed`'s model loaded.
    pub async fn load(
        embed: Arc<dyn Embed>,
        store: Arc<Store>,
        registry: Arc<ToolRegistry>,
        config: SemanticConfig,
    ) -> Result<Arc<Self>, StoreError> {
        let this = Arc::new(Self {
            embed,
            store,
            registry,
            config,
            state: RwLock::new(State::default()),
            counters: Counters::default(),
            evicted: Mutex::new(Vec::new()),
        });
        this.catch_up().await?;
        Ok(this)
    }

    /// Reads the entries other processes added, and drops the entries of tenants whose cache
    /// was cleared meanwhile.
    pub async fn catch_up(&self) -> Result<(), StoreError> {
        let generations = self.store.cache_generations().await?;
        let cleared: Vec<String> = match self.state.read() {
            Ok(s) => generations
                .iter()
                .filter(|(t, g)| s.generations.get(t) != Some(g))
                .map(|(t, _)| t.clone())
                .collect(),
            Err(_) => Vec::new(),
        };
        if let Ok(mut s) = self.state.write() {
            for tenant in &cleared {
                drop_tenant(&mut s, tenant);
            }
            s.generations = generations.into_iter().collect();
        }
        loop {
            let after = self.state.read().map(|s| s.last_id).unwrap_or(i64::MAX);
            let rows = self
                .store
                .cache_entries_after(after, CATCH_UP_BATCH)
                .await?;
            let done = rows.len() < CATCH_UP_BATCH;
            if let Ok(mut s) = self.state.write() {
                for row in rows {
                    s.last_id = s.last_id.max(row.id);
                    self.admit(&mut s, row);
                }
            }
            if done {
                return Ok(());
            }
        }
    }

    /// Takes a stored row into memory (when of this model, unexpired and readable).
    fn admit(&self, s: &mut State, row: CacheEntryRecord) {
        if row.model != self.embed.model_id() {
            return;
        }
        let Ok(id) = u64::try_from(row.id) else {
            return;
        };
        let Ok(expires_at) = chrono::DateTime::parse_from_rfc3339(&row.expires_at) else {
            return;
        };
        let expires_at = expires_at.with_timezone(&chrono::Utc);
        if expires_at <= chrono::Utc::now() || s.entries.contains_key(&id) {
            return;
        }
        let Ok(template) = serde_json::from_str::<PlanTemplate>(&row.template) else {
            tracing::warn!(id = row.id, "plan-cache entry does not parse; skipped");
            return;
        };
        let vector = from_bytes(&row.embedding);
        let dims = self.embed.dims();
        if vector.len() != dims {
            return;
        }
        let index = s
            .indexes
            .entry((row.tenant.clone(), row.scope.clone()))
            .or_insert_with(|| Arc::new(VectorIndex::new(dims)));
        if index.insert(id, &vector).is_err() {
            return;
        }
        s.exact.insert((row.tenant.clone(), row.key.clone()), id);
        s.entries.insert(
            id,
            Entry {
                tenant: row.tenant,
                scope: row.scope,
                key: row.key,
                template,
                expires_at,
            },
        );
        s.order.push_back(id);
        while s.entries.len() > self.config.capacity.max(1) {
            let Some(old) = s.order.pop_front() else {
                break;
            };
            if remove(s, old)
                && let Ok(mut evicted) = self.evicted.lock()
            {
                evicted.push(old as i64);
            }
        }
    }

    /// Looks `prompt` up for `tenant` in `scope` (CPU: embeds the prompt; call it off the
    /// async workers).
    pub fn lookup(&self, tenant: &str, scope: &str, prompt: &str) -> Lookup {
        let found = self.find(tenant, scope, prompt);
        let c = &self.counters;
        match &found {
            Lookup::Hit {
                exact,
                similarity,
                rebound,
                ..
            } => {
                if *exact {
                    c.hits_exact.fetch_add(1, Ordering::Relaxed);
                } else {
                    c.hits_semantic.fetch_add(1, Ordering::Relaxed);
                    if *rebound {
                        c.hits_rebound.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Ok(mut sum) = c.similarity_sum.lock() {
                        *sum += f64::from(*similarity);
                    }
                }
                metrics::counter!("crane_plan_cache_lookups_total", "layer" => "semantic", "result" => if *exact { "hit_exact" } else { "hit_semantic" }).increment(1);
            }
            Lookup::Refused { refusal, .. } => {
                c.refused.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut by) = c.refused_by_reason.lock() {
                    *by.entry(refusal.as_str()).or_default() += 1;
                }
                metrics::counter!("crane_plan_cache_lookups_total", "layer" => "semantic", "result" => "refused").increment(1);
                metrics::counter!("crane_plan_cache_refused_total", "reason" => refusal.as_str())
                    .increment(1);
            }
            Lookup::Miss => {
                c.misses.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("crane_plan_cache_lookups_total", "layer" => "semantic", "result" => "miss").increment(1);
            }
        }
        found
    }

    fn find(&self, tenant: &str, scope: &str, prompt: &str) -> Lookup {
        let now = chrono::Utc::now();
        let key = exact_key(scope, prompt);
        {
            let Ok(s) = self.state.read() else {
                return Lookup::Miss;
            };
            if !s
                .indexes
                .contains_key(&(tenant.to_owned(), scope.to_owned()))
            {
                return Lookup::Miss;
            }
            if let Some(entry) = s
                .exact
                .get(&(tenant.to_owned(), key))
                .and_then(|id| s.entries.get(id))
                .filter(|e| e.expires_at > now)
                && let Ok(served) = entry.template.bind_checked(prompt, &self.registry)
            {
                return Lookup::Hit {
                    steps: served.steps,
                    exact: true,
                    similarity: 1.0,
                    rebound: false,
                };
            }
        }
        let vector = match self.embed.embed(prompt) {
            Ok(v) => v,
            Err(error) => {
                tracing::warn!(%error, "could not embed the prompt; semantic cache skipped");
                return Lookup::Miss;
            }
        };
        let Ok(s) = self.state.read() else {
            return Lookup::Miss;
        };
        let Some(index) = s.indexes.get(&(tenant.to_owned(), scope.to_owned())) else {
            return Lookup::Miss;
        };
        let mut first_refusal = None;
        for n in index.search(&vector, CANDIDATES) {
            if n.similarity < self.config.threshold {
                break;
            }
            let Some(entry) = s.entries.get(&n.id).filter(|e| e.expires_at > now) else {
                continue;
            };
            match entry.template.bind_checked(prompt, &self.registry) {
                Ok(served) => {
                    return Lookup::Hit {
                        rebound: served.kind == super::guard::HitKind::Rebound,
                        steps: served.steps,
                        exact: false,
                        similarity: n.similarity,
                    };
                }
                Err(refusal) => {
                    if first_refusal.is_none() {
                        first_refusal = Some((refusal, n.similarity));
                    }
                }
            }
        }
        match first_refusal {
            Some((refusal, similarity)) => Lookup::Refused {
                refusal,
                similarity,
            },
            None => Lookup::Miss,
        }
    }

    /// Remembers the plan an LLM made for `prompt` (the embedding runs on the blocking pool).
    /// Returns whether it was stored.
    pub async fn remember(
        &self,
        tenant: &str,
        scope: &str,
        prompt: &str,
        steps: &[PlanStep],
    ) -> Result<bool, StoreError> {
        let template = match PlanTemplate::from_plan(prompt, steps, &self.registry) {
            Ok(t) => t,
            Err(why) => {
                self.counters.not_cacheable.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(reason = %why, "plan not taken by the semantic cache");
                return Ok(false);
            }
        };
        let key = exact_key(scope, prompt);
        if self
            .state
            .read()
            .is_ok_and(|s| s.exact.contains_key(&(tenant.to_owned(), key.clone())))
        {
            return Ok(false);
        }
        let (embed, text) = (Arc::clone(&self.embed), prompt.to_owned());
        let vector = match tokio::task::spawn_blocking(move || embed.embed(&text)).await {
            Ok(Ok(v)) => v,
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not embed the prompt; plan not cached");
                return Ok(false);
            }
            Err(_) => return Ok(false),
        };
        let now = chrono::Utc::now();
        let expires =
            now + chrono::Duration::from_std(self.config.ttl).unwrap_or(chrono::Duration::days(7));
        let mut row = CacheEntryRecord {
            id: 0,
            tenant: tenant.to_owned(),
            scope: scope.to_owned(),
            key,
            prompt: prompt.to_owned(),
            model: self.embed.model_id().to_owned(),
            template: serde_json::to_string(&template)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            embedding: to_bytes(&vector),
            created_at: now.to_rfc3339(),
            expires_at: expires.to_rfc3339(),
        };
        let Some(id) = self.store.put_cache_entry(&row).await? else {
            return Ok(false);
        };
        row.id = id;
        if let Ok(mut s) = self.state.write() {
            self.admit(&mut s, row);
        }
        self.counters.stored.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    /// Deletes `tenant`'s entries (here, in the store, and — through the generation — on
    /// every replica); how many were deleted.
    pub async fn clear(&self, tenant: &str) -> Result<u64, StoreError> {
        let n = self.store.clear_cache(tenant).await?;
        if let Ok(mut s) = self.state.write() {
            drop_tenant(&mut s, tenant);
        }
        self.catch_up().await?;
        Ok(n)
    }

    /// Deletes expired entries (memory and store) and those evicted for capacity; rebuilds
    /// indexes with many removals.
    pub async fn maintain(&self) -> Result<(), StoreError> {
        let now = chrono::Utc::now();
        let rebuild = if let Ok(mut s) = self.state.write() {
            let expired: Vec<u64> = s
                .entries
                .iter()
                .filter(|(_, e)| e.expires_at <= now)
                .map(|(id, _)| *id)
                .collect();
            for id in expired {
                remove(&mut s, id);
            }
            let State { entries, order, .. } = &mut *s;
            order.retain(|id| entries.contains_key(id));
            s.indexes
                .values()
                .filter(|i| i.needs_rebuild())
                .cloned()
                .collect::<Vec<_>>()
        } else {
            Vec::new()
        };
        // Rebuilding takes seconds to minutes: on the blocking pool, outside the state lock
        // (lookups and inserts go on meanwhile; the index swaps the new graph in).
        if !rebuild.is_empty() {
            let _ = tokio::task::spawn_blocking(move || {
                for index in rebuild {
                    index.rebuild_if_needed();
                }
            })
            .await;
        }
        let evicted = self
            .evicted
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default();
        self.store
            .delete_cache_entries(&now.to_rfc3339(), &evicted)
            .await?;
        Ok(())
    }

    /// Catches up every `every` (entries of other replicas, clears) and maintains every
    /// minute, until the cache is dropped.
    pub fn spawn(self: &Arc<Self>, every: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_maintenance = tokio::time::Instant::now();
            loop {
                tick.tick().await;
                let Some(this) = weak.upgrade() else { break };
                if let Err(error) = this.catch_up().await {
                    tracing::warn!(%error, "semantic cache: catching up failed; retrying");
                }
                if last_maintenance.elapsed() >= Duration::from_secs(60) {
                    last_maintenance = tokio::time::Instant::now();
                    if let Err(error) = this.maintain().await {
                        tracing::warn!(%error, "semantic cache: maintenance failed; retrying");
                    }
                }
            }
        });
    }

    /// The counters and the number of entries held.
    pub fn stats(&self) -> CacheStats {
        let c = &self.counters;
        let hits_semantic = c.hits_semantic.load(Ordering::Relaxed);
        let sum = c.similarity_sum.lock().map(|s| *s).unwrap_or(0.0);
        CacheStats {
            enabled: true,
            model: self.embed.model_id().to_owned(),
            threshold: self.config.threshold,
            entries: self.state.read().map(|s| s.entries.len()).unwrap_or(0),
            hits_exact: c.hits_exact.load(Ordering::Relaxed),
            hits_semantic,
            hits_rebound: c.hits_rebound.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            refused_near_hits: c.refused.load(Ordering::Relaxed),
            refused_by_reason: c
                .refused_by_reason
                .lock()
                .map(|m| m.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect())
                .unwrap_or_default(),
            mean_similarity_of_hits: (hits_semantic > 0).then(|| sum / hits_semantic as f64),
            not_cacheable: c.not_cacheable.load(Ordering::Relaxed),
            stored: c.stored.load(Ordering::Relaxed),
        }
    }

    /// The `k` entries of `tenant` in `scope` nearest to `prompt` (any similarity, best
    /// first) as (prompt, plan): plans of completed runs the same variant made — the examples
    /// for dynamic few-shot planning. Embeds the prompt: call off the async workers.
    pub fn nearest(
        &self,
        tenant: &str,
        scope: &str,
        prompt: &str,
        k: usize,
    ) -> Vec<(String, Vec<PlanStep>, f32)> {
        if k == 0 {
            return Vec::new();
        }
        let Ok(vector) = self.embed.embed(prompt) else {
            return Vec::new();
        };
        let now = chrono::Utc::now();
        let Ok(s) = self.state.read() else {
            return Vec::new();
        };
        let Some(index) = s.indexes.get(&(tenant.to_owned(), scope.to_owned())) else {
            return Vec::new();
        };
        index
            .search(&vector, k)
            .into_iter()
            .filter_map(|n| {
                let e = s.entries.get(&n.id).filter(|e| e.expires_at > now)?;
                Some((
                    e.template.prompt.clone(),
                    e.template.original_steps(),
                    n.similarity,
                ))
            })
            .collect()
    }

    /// Entries held for `tenant`.
    pub fn entries_of(&self, tenant: &str) -> usize {
        self.state
            .read()
            .map(|s| s.entries.values().filter(|e| e.tenant == tenant).count())
            .unwrap_or(0)
    }
}

/// Removes one entry from memory; false when it was not there.
fn remove(s: &mut State, id: u64) -> bool {
    let Some(e) = s.entries.remove(&id) else {
        return false;
    };
    if s.exact.get(&(e.tenant.clone(), e.key.clone())) == Some(&id) {
        s.exact.remove(&(e.tenant.clone(), e.key));
    }
    if let Some(index) = s.indexes.get(&(e.tenant, e.scope)) {
        index.remove(id);
    }
    true
}

fn drop_tenant(s: &mut State, tenant: &str) {
    let ids: Vec<u64> = s
        .entries
        .iter()
        .filter(|(_, e)| e.tenant == tenant)
        .map(|(id, _)| *id)
        .collect();
    for id in ids {
        remove(s, id);
    }
    s.indexes.retain(|(t, _), _| t != tenant);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::store::StoreConfig;
    use serde_json::json;

    /// Bag-of-words vectors: prompts sharing words are similar, as with a real model.
    struct Words;

    impl Embed for Words {
        fn embed(&self, text: &str) -> Result<Vec<f32>, String> {
            let mut v = vec![0f32; 64];
            for w in text.split_whitespace() {
                let h = w
                    .to_lowercase()
                    .bytes()
                    .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
                v[(h % 64) as usize] += 1.0;
            }
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-9);
            Ok(v.into_iter().map(|x| x / n).collect())
        }
        fn dims(&self) -> usize {
            64
        }
        fn model_id(&self) -> &str {
            "words"
        }
    }

    fn add(title: &str) -> Vec<PlanStep> {
        vec![PlanStep {
            step_number: 1,
            tool: "todo_add".into(),
            input: json!({ "title": title }),
            reasoning: "r".into(),
        }]
    }

    async fn cache(store: &Arc<Store>, config: SemanticConfig) -> Arc<SemanticCache> {
        SemanticCache::load(
            Arc::new(Words),
            store.clone(),
            Arc::new(crate::tools::builtin_registry()),
            config,
        )
        .await
        .unwrap()
    }

    fn title(found: &Lookup) -> Option<String> {
        match found {
            Lookup::Hit { steps, .. } => steps[0].input["title"].as_str().map(str::to_owned),
            _ => None,
        }
    }

    #[tokio::test]
    async fn serves_within_tenant_and_scope_only_and_never_another_literal() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        let c = cache(&store, SemanticConfig::default()).await;
        assert_eq!(
            c.lookup("acme", "v1", "add a todo to buy milk"),
            Lookup::Miss
        );
        assert!(
            c.remember("acme", "v1", "add a todo to buy milk", &add("buy milk"))
                .await
                .unwrap()
        );
        // The same prompt: exact; new literal: re-bound to it, never the cached one.
        let exact = c.lookup("acme", "v1", "add a todo to buy milk");
        assert!(
            matches!(exact, Lookup::Hit { exact: true, .. }),
            "{exact:?}"
        );
        let eggs = c.lookup("acme", "v1", "add a todo to buy eggs");
        assert_eq!(title(&eggs).as_deref(), Some("buy eggs"), "{eggs:?}");
        // A negation is refused.
        let neg = c.lookup("acme", "v1", "don't add a todo to buy milk");
        assert!(matches!(neg, Lookup::Refused { .. }), "{neg:?}");
        // Another tenant, another planner scope: nothing.
        assert_eq!(
            c.lookup("globex", "v1", "add a todo to buy milk"),
            Lookup::Miss
        );
        assert_eq!(
            c.lookup("acme", "v2", "add a todo to buy milk"),
            Lookup::Miss
        );
        let stats = c.stats();
        assert_eq!((stats.hits_exact, stats.hits_semantic), (1, 1));
        assert_eq!(stats.refused_near_hits, 1);
        assert_eq!(stats.misses, 3);
        assert_eq!(stats.entries, 1);
        // A plan whose literal is not in the prompt is not taken.
        assert!(
            !c.remember("acme", "v1", "add my usual", &add("buy milk"))
                .await
                .unwrap()
        );
        assert_eq!(c.stats().not_cacheable, 1);
    }

    #[tokio::test]
    async fn nearest_gives_the_most_similar_past_plans_of_the_tenant_and_scope() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        let c = cache(&store, SemanticConfig::default()).await;
        for t in ["buy milk", "buy eggs", "call mom"] {
            c.remember("acme", "v1", &format!("add a todo to {t}"), &add(t))
                .await
                .unwrap();
        }
        let near = c.nearest("acme", "v1", "add a todo to buy bread", 2);
        assert_eq!(near.len(), 2);
        assert!(near[0].2 >= near[1].2);
        assert!(
            near.iter()
                .all(|(p, steps, _)| p.starts_with("add a todo to buy")
                    && steps[0].tool == "todo_add")
        );
        assert!(
            c.nearest("globex", "v1", "add a todo to buy bread", 2)
                .is_empty()
        );
        assert!(
            c.nearest("acme", "v1", "add a todo to buy bread", 0)
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_restart_and_another_replica_see_the_entries_and_a_clear_reaches_both() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        let a = cache(&store, SemanticConfig::default()).await;
        let b = cache(&store, SemanticConfig::default()).await;
        a.remember("acme", "v1", "add a todo to buy milk", &add("buy milk"))
            .await
            .unwrap();
        assert_eq!(b.entries_of("acme"), 0);
        b.catch_up().await.unwrap();
        assert_eq!(b.entries_of("acme"), 1);
        assert!(matches!(
            b.lookup("acme", "v1", "add a todo to buy milk"),
            Lookup::Hit { .. }
        ));
        // A fresh process over the same store loads it.
        let c = cache(&store, SemanticConfig::default()).await;
        assert_eq!(c.entries_of("acme"), 1);
        // Cleared on one: the others drop it at their next catch-up.
        assert_eq!(a.clear("acme").await.unwrap(), 1);
        assert_eq!(a.entries_of("acme"), 0);
        b.catch_up().await.unwrap();
        assert_eq!(b.entries_of("acme"), 0);
        assert_eq!(
            b.lookup("acme", "v1", "add a todo to buy milk"),
            Lookup::Miss
        );
    }

    #[tokio::test]
    async fn expired_entries_are_not_served_and_capacity_evicts_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        let short = SemanticConfig {
            ttl: Duration::ZERO,
            ..SemanticConfig::default()
        };
        let c = cache(&store, short).await;
        c.remember("acme", "v1", "add a todo to buy milk", &add("buy milk"))
            .await
            .unwrap();
        assert_eq!(c.entries_of("acme"), 0);
        assert_eq!(
            c.lookup("acme", "v1", "add a todo to buy milk"),
            Lookup::Miss
        );

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        let small = SemanticConfig {
            capacity: 2,
            ..SemanticConfig::default()
        };
        let c = cache(&store, small).await;
        for t in ["buy milk", "buy eggs", "buy bread"] {
            c.remember("acme", "v1", &format!("add a todo to {t}"), &add(t))
                .await
                .unwrap();
        }
        assert_eq!(c.entries_of("acme"), 2);
        c.maintain().await.unwrap();
        // The evicted entry is gone from the store too: a restart holds the two newest.
        let again = cache(&store, SemanticConfig::default()).await;
        assert_eq!(again.entries_of("acme"), 2);
        assert!(matches!(
            again.lookup("acme", "v1", "add a todo to buy bread"),
            Lookup::Hit { exact: true, .. }
        ));
    }
}
