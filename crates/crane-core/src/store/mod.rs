//! The durable store: embedded SQLite (WAL) under the data dir.
//!
//! Writes go through one writer thread that groups concurrent writes into a single transaction
//! (group commit): each write still gets its own savepoint, so one failing write never undoes
//! another, and its caller hears back only after the transaction committed. Reads use a small
//! pool of read-only connections, which WAL lets run beside the writer.
//!
//! Durability: `synchronous=NORMAL` in WAL mode — a committed transaction survives a killed
//! process (kill -9); an OS crash or power loss may lose the last transactions. Set
//! `synchronous = "full"` in the config to survive those too, at a throughput cost.

mod audit;
mod budgets;
mod checkpoint;
mod evals;
mod keys;
mod migrations;
mod pool;
mod registry;
mod runs;
mod todos;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;

pub use audit::{AuditEntry, AuditPage};
pub use budgets::{BudgetSpendRow, SpendUpdate};
pub use evals::{EvalPage, EvalSummary, StoredEval};
pub use keys::ApiKeyRow;
pub use registry::{AliasMove, PromptVersion, Registration, RollbackError};
pub use runs::{InsertOutcome, RunFilter, RunPage};
pub use todos::{
    MAX_CANDIDATES, Selected, Todo, TodoFilter, TodoLookupError, TodoMatch, TodoOrder, TodoPage,
    TodoSelector,
};

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("could not open the data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    #[error(
        "the database was written by a newer crane (schema version {found}, this build knows {known}); upgrade crane"
    )]
    TooNew { found: i64, known: i64 },
    #[error("the store is shut down")]
    Closed,
}

impl StoreError {
    /// True for failures that may pass on their own (a busy or locked database).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            _ => false,
        }
    }
}

/// How hard a commit is pushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Survives a killed process (the default).
    #[default]
    Normal,
    /// Also survives an OS crash or power loss.
    Full,
}

/// Store settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub synchronous: Synchronous,
    /// Read-only connections in the pool.
    pub readers: usize,
    /// Most writes grouped in one transaction.
    pub max_batch: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Normal,
            readers: 4,
            max_batch: 512,
        }
    }
}

/// The durable store.
pub struct Store {
    writer: writer::Writer,
    _checkpointer: checkpoint::Checkpointer,
    readers: pool::ReadPool,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) `crane.db` in `data_dir` and applies pending migrations.
    pub fn open(data_dir: &Path, config: &StoreConfig) -> Result<Arc<Self>, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join("crane.db");
        let mut conn = Connection::open(&path)?;
        configure(&conn, config.synchronous)?;
        migrations::apply(&mut conn)?;
        // Checkpoints run on their own thread so commits never pay for them.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
        let checkpointer = checkpoint::Checkpointer::start(Connection::open(&path)?)?;
        let mut readers = Vec::with_capacity(config.readers.max(1));
        for _ in 0..config.readers.max(1) {
            let r = Connection::open_with_flags(
                &path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            r.busy_timeout(std::time::Duration::from_secs(5))?;
            readers.push(r);
        }
        Ok(Arc::new(Self {
            writer: writer::Writer::start(
                conn,
                config.max_batch,
                match config.synchronous {
                    Synchronous::Normal => writer::Mode::Inline,
                    Synchronous::Full => writer::Mode::Thread,
                },
            )?,
            _checkpointer: checkpointer,
            readers: pool::ReadPool::new(readers),
            path,
        }))
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` inside the next group-commit transaction; resolves after the commit.
    pub async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        self.writer.write(f).await
    }

    /// Runs `f` on a read-only connection.
    pub async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        self.readers.read(f).await
    }

    /// Runs `f` on a read-only connection on the calling thread when one is free (else like
    /// [`Store::read`]): for reads of a few rows on the request path only.
    pub async fn read_now<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        self.readers.read_now(f).await
    }

    /// Stops the writer after the writes already queued; later writes fail with `Closed`.
    pub async fn close(&self) {
        self.writer.close().await;
    }
}

fn configure(conn: &Connection, sync: Synchronous) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        match sync {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        },
    )?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}
