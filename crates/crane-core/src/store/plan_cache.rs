//! The entries of the semantic plan cache (issue 17), persisted so that a restart keeps them
//! and replicas share them: one row per (tenant, scope, prompt) with the plan template (JSON
//! the caller owns), the prompt's embedding (little-endian f32s) and the model that made it.
//!
//! Rows are append-only (ids grow), so a replica catches up by reading the rows after the last
//! id it has. Clearing a tenant's cache deletes its rows and bumps the tenant's generation,
//! which tells the other replicas to drop what they hold in memory.

use rusqlite::params;

use super::{SqliteStore, StoreError};

/// One stored cache entry.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheEntryRecord {
    /// Assigned by the store (0 before it is stored).
    pub id: i64,
    pub tenant: String,
    /// The planner identity the plan belongs to (variant, version, provider, model, template).
    pub scope: String,
    /// Unique per (tenant, scope, normalised prompt): a hash the caller computes.
    pub key: String,
    pub prompt: String,
    /// The embedding model's id.
    pub model: String,
    /// The plan template (JSON).
    pub template: String,
    /// The prompt's embedding, little-endian f32s.
    pub embedding: Vec<u8>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; the entry is not served after it.
    pub expires_at: String,
}

/// The columns of an entry, in [`CacheEntryRecord`]'s order.
pub(super) const CACHE_COLUMNS: &str =
    "id, tenant, scope, key, prompt, model, template, embedding, created_at, expires_at";

/// An entry's columns as read.
pub(super) type CacheColumns = (
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    Vec<u8>,
    String,
    String,
);

/// The entry of a row of [`CACHE_COLUMNS`].
pub(super) fn entry_of(
    (id, tenant, scope, key, prompt, model, template, embedding, created_at, expires_at): CacheColumns,
) -> CacheEntryRecord {
    CacheEntryRecord {
        id,
        tenant,
        scope,
        key,
        prompt,
        model,
        template,
        embedding,
        created_at,
        expires_at,
    }
}

fn read_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<CacheEntryRecord> {
    Ok(entry_of((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    )))
}

impl SqliteStore {
    /// Stores an entry; its id, or `None` when the tenant has one for that key already.
    pub async fn put_cache_entry(&self, e: &CacheEntryRecord) -> Result<Option<i64>, StoreError> {
        let e = e.clone();
        self.write(move |conn| {
            let changed = conn
                .prepare_cached(
                    "INSERT INTO plan_cache (tenant, scope, key, prompt, model, template, embedding,
                        created_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
                )?
                .execute(params![
                    e.tenant,
                    e.scope,
                    e.key,
                    e.prompt,
                    e.model,
                    e.template,
                    e.embedding,
                    e.created_at,
                    e.expires_at
                ])?;
            Ok((changed == 1).then(|| conn.last_insert_rowid()))
        })
        .await
    }

    /// Up to `limit` entries with an id above `after`, by id.
    pub async fn cache_entries_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<CacheEntryRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read_now(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {CACHE_COLUMNS} FROM plan_cache WHERE id > ?1 ORDER BY id LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![after, limit], read_entry)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Deletes the tenant's entries and bumps its generation; how many were deleted.
    pub async fn clear_cache(&self, tenant: &str) -> Result<u64, StoreError> {
        let tenant = tenant.to_owned();
        self.write(move |conn| {
            // Inside the writer's transaction: both or neither.
            let n = conn.execute("DELETE FROM plan_cache WHERE tenant = ?1", [&tenant])?;
            conn.execute(
                "INSERT INTO plan_cache_generations (tenant, generation) VALUES (?1, 1)
                 ON CONFLICT (tenant) DO UPDATE SET generation = generation + 1",
                [&tenant],
            )?;
            Ok(n as u64)
        })
        .await
    }

    /// Every tenant's cache generation (tenants never cleared are absent).
    pub async fn cache_generations(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.read_now(move |conn| {
            let mut stmt =
                conn.prepare_cached("SELECT tenant, generation FROM plan_cache_generations")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Deletes the entries that expired before `now` (RFC 3339), and the given ids (evicted
    /// for capacity); how many were deleted.
    pub async fn delete_cache_entries(&self, now: &str, ids: &[i64]) -> Result<u64, StoreError> {
        let (now, ids) = (now.to_owned(), ids.to_vec());
        self.write(move |conn| {
            let mut n = conn.execute("DELETE FROM plan_cache WHERE expires_at < ?1", [&now])?;
            let mut stmt = conn.prepare_cached("DELETE FROM plan_cache WHERE id = ?1")?;
            for id in &ids {
                n += stmt.execute([id])?;
            }
            Ok(n as u64)
        })
        .await
    }
}
