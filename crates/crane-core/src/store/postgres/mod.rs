//! The PostgreSQL backend: every record of the SQLite store in one database shared by several
//! crane replicas (`CRANE_DATABASE_URL`).
//!
//! - A pool of connections per replica ([`StoreConfig::pool_size`]); a connection that cannot be
//!   had within [`ACQUIRE_TIMEOUT`] fails the call with [`StoreError::Unavailable`] (the
//!   server answers `503`), so a database that is down never hangs a request, and every
//!   statement runs under a `statement_timeout`.
//! - Each write is its own transaction (PostgreSQL groups concurrent commits itself); a tool's
//!   side effect and its effect key commit in one transaction, so a step re-executed by another
//!   replica never acts twice.
//! - Leases: a run this replica stores or resumes is leased to it (`lease_owner`,
//!   `lease_until`); every third of the lease the runtime extends the leases of the runs it is
//!   executing, in one statement ([`PgStore::extend_leases`]). A replica that dies stops
//!   extending them, and so does one that dropped a run (its save failed); once one lapses, any replica claims the
//!   run with `FOR UPDATE SKIP LOCKED` ([`PgStore::claim_orphaned_runs`]) and resumes it from its
//!   last completed step. Saves of a run are fenced on the lease: a replica that lost a run can
//!   no longer overwrite it ([`StoreError::LeaseLost`]).
//! - Migrations ([`migrations`]) run at connect under an advisory lock, so replicas starting
//!   together migrate once.

mod audit;
mod budgets;
mod evals;
mod experiments;
mod keys;
mod migrations;
mod plan_cache;
mod registry;
mod runs;
mod todos;

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use super::{StoreConfig, StoreError};

/// Longest a call waits for a free connection before failing with `Unavailable`.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest one statement may run.
const STATEMENT_TIMEOUT: &str = "10s";

/// The PostgreSQL store of one replica.
pub struct PgStore {
    pool: PgPool,
    /// This replica's name in `lease_owner`: unique per process.
    replica: Arc<str>,
    lease: Duration,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut => {
                StoreError::Unavailable("no database connection within 2 s".into())
            }
            sqlx::Error::PoolClosed => StoreError::Closed,
            sqlx::Error::Io(e) => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Tls(e) => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Database(db) => {
                // Class 08 (connection exception), 57P01..03 (admin shutdown, crash shutdown,
                // cannot connect now): the database is going away or not there yet.
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                if code.starts_with("08") || code.starts_with("57P") {
                    StoreError::Unavailable(db.message().to_owned())
                } else {
                    StoreError::Postgres(format!("{} (SQLSTATE {code})", db.message()))
                }
            }
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                StoreError::Corrupt(e.to_string())
            }
            other => StoreError::Postgres(other.to_string()),
        }
    }
}

/// This replica's id: kept in `data_dir/replica-id` (made on first start), so a replica that
/// restarts on its data dir takes its own unfinished runs back at once instead of waiting for
/// their leases to lapse. Two running replicas must not share a data dir (as with SQLite).
pub fn replica_id(data_dir: &std::path::Path) -> Result<String, StoreError> {
    let path = data_dir.join("replica-id");
    let io = |source| StoreError::DataDir {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        Ok(_) => Err(StoreError::Corrupt(format!(
            "{} is empty; delete it to make a new replica id",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir).map_err(io)?;
            let id = format!(
                "{}-{}",
                hostname(),
                &uuid::Uuid::now_v7().simple().to_string()[20..]
            );
            let tmp = data_dir.join("replica-id.tmp");
            std::fs::write(&tmp, &id).map_err(io)?;
            std::fs::rename(&tmp, &path).map_err(io)?;
            Ok(id)
        }
        Err(e) => Err(io(e)),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| {
            h.trim()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect()
        })
        .filter(|h: &String| !h.is_empty())
        .unwrap_or_else(|| "crane".into())
}

/// True when `s` holds a NUL character, which PostgreSQL text cannot: no stored key has one,
/// so a lookup by such a key finds nothing (rather than failing in the database).
pub(super) fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`: a URL fit for logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(unparsable database URL)".into(),
    }
}

impl PgStore {
    /// Connects to `url` as replica `replica` (unique per running process; see
    /// [`replica_id`]), and applies pending migrations.
    pub async fn connect(
        url: &str,
        replica: &str,
        config: &StoreConfig,
    ) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url.parse().map_err(|e: sqlx::Error| {
            StoreError::Postgres(format!(
                "invalid database URL {}: {e}; expected postgres://user[:password]@host[:port]/database",
                redact_url(url)
            ))
        })?;
        let options = options
            .options([("statement_timeout", STATEMENT_TIMEOUT)])
            .application_name("crane")
            .disable_statement_logging();
        let pool = PgPoolOptions::new()
            .max_connections(config.pool_size.max(2))
            .min_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Unavailable(why) | StoreError::Postgres(why) => {
                    StoreError::Unavailable(format!(
                        "could not connect to {}: {why}",
                        redact_url(url)
                    ))
                }
                other => other,
            })?;
        migrations::apply(&pool).await?;
        let store = Self {
            pool,
            replica: replica.into(),
            lease: config.lease.max(Duration::from_millis(300)),
        };
        Ok(store)
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// This replica's name in the runs it leases.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// How long a lease lasts without a heartbeat.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX)
    }

    /// Extends this replica's leases on `run_ids` (the runs it is executing); how many it
    /// still held.
    pub async fn extend_leases(&self, run_ids: &[String]) -> Result<u64, StoreError> {
        runs::extend(&self.pool, &self.replica, run_ids, self.lease_ms()).await
    }

    /// Hands this replica's unfinished runs back (their leases end now, so another replica
    /// resumes them at once) and closes the pool.
    pub async fn close(&self) {
        if let Err(error) = runs::release(&self.pool, &self.replica).await {
            tracing::warn!(%error, "could not release this replica's run leases; they lapse on their own");
        }
        self.pool.close().await;
    }
}
