//! The audit log: who (key id, or `local`) did what to what, when, per tenant. Append-only;
//! listed newest first with a cursor.

use rusqlite::params;
use serde::Serialize;
use serde_json::Value;

use super::{SqliteStore, StoreError};

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub tenant: String,
    /// The key id that acted, or `local` (auth off, or the CLI on the data dir).
    pub actor: String,
    /// `key.created`, `key.revoked`, `alias.moved`, `alias.rolled_back`, `budget.changed`,
    /// `run.cancelled`.
    pub action: String,
    /// What it acted on (a key id, an alias, a run id).
    pub target: String,
    pub details: Value,
    pub at: String,
}

/// One page of the audit log, newest first.
#[derive(Debug)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub next_cursor: Option<i64>,
}

/// An entry's columns as read: seq, tenant, actor, action, target, details, at.
pub(super) type AuditColumns = (i64, String, String, String, String, String, String);

/// Rows to fetch for a page of `limit` entries: one extra tells whether another page exists.
pub(super) fn fetch_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1)
}

/// The page of `rows` ([`AuditColumns`], newest first, up to `limit + 1` of them).
pub(super) fn page(rows: Vec<AuditColumns>, limit: usize) -> AuditPage {
    let mut rows = rows;
    let next_cursor = (rows.len() > limit).then(|| {
        rows.truncate(limit);
        rows.last().map_or(0, |r| r.0)
    });
    let entries = rows
        .into_iter()
        .map(
            |(_, tenant, actor, action, target, details, at)| AuditEntry {
                tenant,
                actor,
                action,
                target,
                details: serde_json::from_str(&details).unwrap_or(Value::Null),
                at,
            },
        )
        .collect();
    AuditPage {
        entries,
        next_cursor,
    }
}

impl SqliteStore {
    /// Appends an entry.
    pub async fn audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO audit (tenant, actor, action, target, details, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                entry.tenant,
                entry.actor,
                entry.action,
                entry.target,
                entry.details.to_string(),
                entry.at
            ])?;
            Ok(())
        })
        .await
    }

    /// A page of `tenant`'s audit log, newest first, `limit` entries after `cursor`.
    pub async fn list_audit(
        &self,
        tenant: &str,
        limit: usize,
        cursor: Option<i64>,
    ) -> Result<AuditPage, StoreError> {
        let tenant = tenant.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, tenant, actor, action, target, details, at FROM audit
                 WHERE tenant = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
            )?;
            let rows = stmt
                .query_map(
                    params![tenant, cursor.unwrap_or(i64::MAX), fetch_limit(limit)],
                    |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                        ))
                    },
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(page(rows, limit))
        })
        .await
    }
}
