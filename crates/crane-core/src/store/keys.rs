//! API keys: id, tenant, role, name, the SHA-256 of the secret (never the key), creation and
//! revocation times. Listing and revoking take an optional tenant scope (an admin key sees and
//! revokes only its own tenant's keys; the CLI on the data dir sees all).

use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;

use super::{SqliteStore, StoreError};
use crate::access::Role;

/// One stored API key. `hash` is the SHA-256 of the secret; it is never serialised.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiKeyRow {
    pub key_id: String,
    pub tenant: String,
    pub role: Role,
    pub name: Option<String>,
    #[serde(skip)]
    pub hash: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// The columns of a key, in the order [`KeyColumns`] and [`key_of`] take them.
pub(super) const COLUMNS: &str = "key_id, tenant, role, name, hash, created_at, revoked_at";

/// A key's [`COLUMNS`] as read: key_id, tenant, role, name, hash, created_at, revoked_at.
pub(super) type KeyColumns = (
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
);

/// The key of a row of [`COLUMNS`].
pub(super) fn key_of(
    (key_id, tenant, role, name, hash, created_at, revoked_at): KeyColumns,
) -> ApiKeyRow {
    ApiKeyRow {
        key_id,
        tenant,
        // Only valid roles are ever written; an unknown one reads as the least right.
        role: role.parse().unwrap_or(Role::Viewer),
        name,
        hash,
        created_at,
        revoked_at,
    }
}

fn decode(r: &Row<'_>) -> rusqlite::Result<ApiKeyRow> {
    Ok(key_of((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    )))
}

impl SqliteStore {
    /// Stores a new key.
    pub async fn insert_api_key(&self, key: &ApiKeyRow) -> Result<(), StoreError> {
        let k = key.clone();
        self.write(move |conn| {
            conn.prepare_cached(&format!(
                "INSERT INTO api_keys ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            ))?
            .execute(params![
                k.key_id,
                k.tenant,
                k.role.as_str(),
                k.name,
                k.hash,
                k.created_at,
                k.revoked_at
            ])?;
            Ok(())
        })
        .await
    }

    /// The key with this id (revoked or not).
    pub async fn get_api_key(&self, key_id: &str) -> Result<Option<ApiKeyRow>, StoreError> {
        let key_id = key_id.to_owned();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys WHERE key_id = ?1"))?
                .query_row([key_id], decode)
                .optional()?)
        })
        .await
    }

    /// Every key (of `tenant` when given), oldest first.
    pub async fn list_api_keys(&self, tenant: Option<&str>) -> Result<Vec<ApiKeyRow>, StoreError> {
        let tenant = tenant.map(str::to_owned);
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM api_keys WHERE ?1 IS NULL OR tenant = ?1 ORDER BY created_at, key_id"
            ))?;
            let rows = stmt.query_map([tenant], decode)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Revokes a key (of `tenant` when given) at `at`; `None` when there is no such key. A key
    /// already revoked keeps its first revocation time.
    pub async fn revoke_api_key(
        &self,
        key_id: &str,
        tenant: Option<&str>,
        at: &str,
    ) -> Result<Option<ApiKeyRow>, StoreError> {
        let (key_id, tenant, at) = (key_id.to_owned(), tenant.map(str::to_owned), at.to_owned());
        self.write(move |conn| {
            conn.prepare_cached(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?3)
                 WHERE key_id = ?1 AND (?2 IS NULL OR tenant = ?2)",
            )?
            .execute(params![key_id, tenant, at])?;
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM api_keys WHERE key_id = ?1 AND (?2 IS NULL OR tenant = ?2)"
                ))?
                .query_row(params![key_id, tenant], decode)
                .optional()?)
        })
        .await
    }
}
