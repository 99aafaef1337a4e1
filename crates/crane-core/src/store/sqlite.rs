//! The embedded SQLite backend's handle: one WAL database file `crane.db` in the data dir.
//!
//! Writes go through the group-commit writer ([`super::writer`]): concurrent writes share one
//! transaction, each in its own savepoint, so one failing write never undoes another, and a
//! caller hears back only after the transaction committed. Reads use a small pool of read-only
//! connections, which WAL lets run beside the writer. Checkpoints run on their own thread.
//!
//! Durability: `synchronous=NORMAL` in WAL mode — a committed transaction survives a killed
//! process (kill -9); an OS crash or power loss may lose the last transactions. Set
//! `synchronous = "full"` in the config to survive those too, at a throughput cost.
//!
//! The queries of each record kind live beside its types (`runs.rs`, `todos.rs`, ...).

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::{StoreConfig, StoreError, Synchronous, checkpoint, migrations, pool, writer};

/// The SQLite store.
pub struct SqliteStore {
    writer: writer::Writer,
    _checkpointer: checkpoint::Checkpointer,
    readers: pool::ReadPool,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) `crane.db` in `data_dir` and applies pending migrations.
    pub fn open(data_dir: &Path, config: &StoreConfig) -> Result<Self, StoreError> {
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
        Ok(Self {
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
        })
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
    /// [`SqliteStore::read`]): for reads of a few rows on the request path only.
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
