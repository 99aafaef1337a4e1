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
            let rows = stmt.query_map(
                params![tenant, cursor.unwrap_or(i64::MAX), limit as i64 + 1],
                |r| {
                    let details: String = r.get(5)?;
                    Ok((
                        r.get::<_, i64>(0)?,
                        AuditEntry {
                            tenant: r.get(1)?,
                            actor: r.get(2)?,
                            action: r.get(3)?,
                            target: r.get(4)?,
                            details: serde_json::from_str(&details).unwrap_or(Value::Null),
                            at: r.get(6)?,
                        },
                    ))
                },
            )?;
            let mut rows = rows.collect::<Result<Vec<_>, _>>()?;
            let next_cursor = (rows.len() > limit).then(|| {
                rows.truncate(limit);
                rows.last().map_or(0, |(seq, _)| *seq)
            });
            Ok(AuditPage {
                entries: rows.into_iter().map(|(_, e)| e).collect(),
                next_cursor,
            })
        })
        .await
    }
}
