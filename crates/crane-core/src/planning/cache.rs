//! The exact plan cache: normalized prompt + planner identity → plan steps. Bounded (LRU) with
//! a TTL. Only LLM plans are cached (a rule plan costs less than the lookup). Whitespace is
//! normalized; case is not, because titles are case-sensitive.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

use crate::domain::PlanStep;

/// A cached plan.
#[derive(Debug, Clone)]
pub struct CachedPlan {
    pub steps: Vec<PlanStep>,
    /// Who made it originally (planner name/version/model), for the record.
    pub origin: String,
}

/// Bounded LRU + TTL cache.
pub struct PlanCache {
    entries: Mutex<LruCache<String, (Instant, CachedPlan)>>,
    ttl: Duration,
}

/// The cache key: the planner identity and the prompt with whitespace runs collapsed.
pub fn key(planner_identity: &str, prompt: &str) -> String {
    let mut normalized = String::with_capacity(prompt.len() + planner_identity.len() + 1);
    normalized.push_str(planner_identity);
    normalized.push('\u{1f}');
    for (i, word) in prompt.split_whitespace().enumerate() {
        if i > 0 {
            normalized.push(' ');
        }
        normalized.push_str(word);
    }
    normalized
}

impl PlanCache {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        let capacity = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        Self {
            entries: Mutex::new(LruCache::new(capacity)),
            ttl,
        }
    }

    pub fn get(&self, key: &str) -> Option<CachedPlan> {
        let mut entries = self.entries.lock().ok()?;
        match entries.get(key) {
            Some((at, plan)) if at.elapsed() < self.ttl => Some(plan.clone()),
            Some(_) => {
                entries.pop(key);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, key: String, plan: CachedPlan) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.put(key, (Instant::now(), plan));
        }
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> CachedPlan {
        CachedPlan {
            steps: Vec::new(),
            origin: "llm".into(),
        }
    }

    #[test]
    fn keys_normalize_whitespace_not_case() {
        assert_eq!(key("v1", "  add   milk\n"), key("v1", "add milk"));
        assert_ne!(key("v1", "add Milk"), key("v1", "add milk"));
        assert_ne!(key("v1", "add milk"), key("v2", "add milk"));
    }

    #[test]
    fn bounded_and_expiring() {
        let cache = PlanCache::new(2, Duration::from_secs(60));
        cache.put("a".into(), plan());
        cache.put("b".into(), plan());
        cache.put("c".into(), plan());
        assert_eq!(cache.len(), 2);
        assert!(cache.get("a").is_none());
        assert!(cache.get("c").is_some());
        // Entries older than the TTL are dropped on lookup (a zero TTL expires everything).
        let expired = PlanCache::new(2, Duration::ZERO);
        expired.put("a".into(), plan());
        assert!(expired.get("a").is_none());
        assert!(expired.is_empty());
    }
}
