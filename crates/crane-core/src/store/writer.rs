//! The single writer thread with group commit.
//!
//! Callers queue closures; the thread takes every queued closure (up to a batch limit), runs
//! each inside its own savepoint of one transaction, commits once, and only then answers each
//! caller. Under load this turns thousands of small writes per second into a few hundred
//! commits, which is what lets SQLite keep up with the runtime.

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::StoreError;

type Reply = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> Reply + Send>;

/// Handle to the writer thread.
pub struct Writer {
    tx: std::sync::Mutex<Option<mpsc::Sender<Job>>>,
    done: std::sync::Mutex<Option<oneshot::Receiver<()>>>,
}

impl Writer {
    pub fn start(conn: Connection, max_batch: usize) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel::<Job>(8192);
        let (done_tx, done_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("crane-store-writer".into())
            .spawn(move || {
                run(conn, rx, max_batch.max(1));
                let _ = done_tx.send(());
            })
            .map_err(|source| StoreError::DataDir {
                path: "writer thread".into(),
                source,
            })?;
        Ok(Self {
            tx: std::sync::Mutex::new(Some(tx)),
            done: std::sync::Mutex::new(Some(done_rx)),
        })
    }

    pub async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let sender = self
            .tx
            .lock()
            .map_err(|_| StoreError::Closed)?
            .clone()
            .ok_or(StoreError::Closed)?;
        let (reply_tx, reply_rx) = oneshot::channel::<Result<R, StoreError>>();
        let job: Job = Box::new(move |conn: &Connection| {
            let result = in_savepoint(conn, f);
            Box::new(move |commit: Result<(), &StoreError>| {
                let outcome = match commit {
                    Ok(()) => result,
                    Err(e) => Err(StoreError::Corrupt(format!("commit failed: {e}"))),
                };
                let _ = reply_tx.send(outcome);
            })
        });
        sender.send(job).await.map_err(|_| StoreError::Closed)?;
        reply_rx.await.map_err(|_| StoreError::Closed)?
    }

    pub async fn close(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let done = self.done.lock().ok().and_then(|mut d| d.take());
        if let Some(done) = done {
            let _ = done.await;
        }
    }
}

fn in_savepoint<R>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    conn.prepare_cached("SAVEPOINT w")?.execute([])?;
    let result = f(conn);
    if result.is_err() {
        conn.prepare_cached("ROLLBACK TO w")?.execute([])?;
    }
    conn.prepare_cached("RELEASE w")?.execute([])?;
    result
}

/// Batches between checks of the WAL's size.
const WAL_CHECK_EVERY: u64 = 64;
/// WAL size above which the writer restarts it.
const WAL_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// Keeps the WAL bounded under constant load. The background thread's PASSIVE checkpoints copy
/// frames into the database but can never *restart* the WAL while this thread keeps appending,
/// so it would grow without end (2.4 GB after 230k runs, with its index mapped into memory).
/// When it passes the limit, the writer itself runs a RESTART checkpoint (most frames are
/// already copied, so this is short) and `journal_size_limit` truncates the file.
fn bound_wal(conn: &Connection) {
    let Some(path) = conn.path() else { return };
    let wal = format!("{path}-wal");
    let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    if size > WAL_LIMIT_BYTES
        && let Err(error) = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))
    {
        tracing::warn!(%error, "WAL restart checkpoint failed");
    }
}

fn run(conn: Connection, mut rx: mpsc::Receiver<Job>, max_batch: usize) {
    let mut replies: Vec<Reply> = Vec::with_capacity(max_batch);
    let mut batches: u64 = 0;
    while let Some(first) = rx.blocking_recv() {
        if let Err(error) = conn
            .prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut s| s.execute([]))
        {
            // Another process holds the database past the busy timeout. Running the job outside
            // a transaction would commit it on its own, so it is dropped unrun: its caller gets
            // `StoreError::Closed` and nothing is written.
            tracing::error!(%error, "store writer could not begin a transaction");
            drop(first);
            continue;
        }
        replies.push(first(&conn));
        while replies.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => replies.push(job(&conn)),
                Err(_) => break,
            }
        }
        let commit = conn
            .prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]))
            .map(|_| ())
            .map_err(StoreError::from);
        if commit.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        batches += 1;
        if batches.is_multiple_of(WAL_CHECK_EVERY) {
            bound_wal(&conn);
        }
        for reply in replies.drain(..) {
            reply(commit.as_ref().map(|_| ()));
        }
    }
}
