//! The semantic plan cache's entries on both backends: one entry per tenant and key, read back
//! in id order after a given id (how replicas catch up), cleared per tenant with a generation
//! bump, and expired or evicted entries deleted.

use crane_core::store::CacheEntryRecord;

use crate::harness::TestStore;
use crate::store_test;

fn entry(tenant: &str, key: &str, expires_at: &str) -> CacheEntryRecord {
    CacheEntryRecord {
        id: 0,
        tenant: tenant.into(),
        scope: "llm@1.0.0/p/m/h".into(),
        key: key.into(),
        prompt: format!("add a todo to buy {key}"),
        model: "minilm".into(),
        template: r#"{"v":1}"#.into(),
        embedding: [0.5f32, -1.0, 2.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
        created_at: "2026-12-01T00:00:00Z".into(),
        expires_at: expires_at.into(),
    }
}

store_test!(
    cache_entries_are_unique_per_key_and_read_back_after_an_id,
    |s: TestStore| async move {
        let far = "2999-01-01T00:00:00Z";
        let a = s
            .put_cache_entry(&entry("acme", "milk", far))
            .await
            .unwrap();
        let b = s
            .put_cache_entry(&entry("acme", "eggs", far))
            .await
            .unwrap();
        let (Some(a), Some(b)) = (a, b) else {
            panic!("both stored: {a:?} {b:?}")
        };
        assert!(b > a);
        // The same key again (two replicas planned the same prompt): kept once.
        assert_eq!(
            s.put_cache_entry(&entry("acme", "milk", far))
                .await
                .unwrap(),
            None
        );
        // Another tenant's entry of the same key is its own.
        let c = s
            .put_cache_entry(&entry("globex", "milk", far))
            .await
            .unwrap();
        assert!(c.is_some());
        let all = s.cache_entries_after(0, 100).await.unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].id, a);
        assert_eq!(
            all[0],
            CacheEntryRecord {
                id: a,
                ..entry("acme", "milk", far)
            }
        );
        let after = s.cache_entries_after(a, 100).await.unwrap();
        assert_eq!(
            after.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![b, c.unwrap()]
        );
        assert_eq!(s.cache_entries_after(a, 1).await.unwrap().len(), 1);

        // Clearing one tenant bumps its generation and leaves the other's entries.
        assert!(s.cache_generations().await.unwrap().is_empty());
        assert_eq!(s.clear_cache("acme").await.unwrap(), 2);
        assert_eq!(s.clear_cache("acme").await.unwrap(), 0);
        assert_eq!(
            s.cache_generations().await.unwrap(),
            vec![("acme".to_owned(), 2)]
        );
        let left = s.cache_entries_after(0, 100).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].tenant, "globex");
        // NUL cannot be stored on PostgreSQL; SQLite keeps it. Either way nothing breaks.
        let _ = s
            .put_cache_entry(&entry("acme", "nul\0", far))
            .await
            .unwrap();
    }
);

store_test!(
    expired_and_evicted_cache_entries_are_deleted,
    |s: TestStore| async move {
        let old = s
            .put_cache_entry(&entry("acme", "old", "2026-01-01T00:00:00Z"))
            .await
            .unwrap()
            .unwrap();
        let evict = s
            .put_cache_entry(&entry("acme", "evict", "2999-01-01T00:00:00Z"))
            .await
            .unwrap()
            .unwrap();
        let keep = s
            .put_cache_entry(&entry("acme", "keep", "2999-01-01T00:00:00Z"))
            .await
            .unwrap()
            .unwrap();
        let n = s
            .delete_cache_entries("2026-06-01T00:00:00Z", &[evict])
            .await
            .unwrap();
        assert_eq!(n, 2);
        let left = s.cache_entries_after(0, 100).await.unwrap();
        assert_eq!(left.iter().map(|e| e.id).collect::<Vec<_>>(), vec![keep]);
        assert!(old < keep);
    }
);
