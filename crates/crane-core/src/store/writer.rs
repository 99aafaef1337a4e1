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

fn run(conn: Connection, mut rx: mpsc::Receiver<Job>, max_batch: usize) {
    let mut replies: Vec<Reply> = Vec::with_capacity(max_batch);
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
        for reply in replies.drain(..) {
            reply(commit.as_ref().map(|_| ()));
        }
    }
}
