//! The store's one write connection, with group commit, in two modes.
//!
//! Callers queue closures; a committer takes every queued closure (up to a batch limit), runs
//! each inside its own savepoint of one transaction, commits once, and only then answers each
//! caller. Under load this turns thousands of small writes per second into a few hundred
//! commits, which is what lets SQLite keep up with the runtime.
//!
//! - [`Mode::Inline`] (`synchronous = NORMAL`, the default): the caller that finds no commit in
//!   progress becomes the committer on its own task. It first yields once, so every task that is
//!   ready at that moment queues its write into the same commit, then commits on the calling
//!   thread. A commit in WAL mode without fsync takes microseconds; a dedicated writer thread
//!   cost two context switches per commit, which on a server pinned to one core were a large
//!   share of a run's CPU and of its tail latency (issue 14, docs/benchmarks.md).
//! - [`Mode::Thread`] (`synchronous = FULL`): commits fsync, which must not block an async
//!   worker, so a dedicated thread commits.

use std::sync::Mutex;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::StoreError;

type Reply = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> Reply + Send>;

/// Where commits run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// On the task of the first caller that finds no commit in progress.
    Inline,
    /// On a dedicated thread.
    Thread,
}

/// The write connection and its committer.
pub enum Writer {
    Inline(Inline),
    Thread(Threaded),
}

impl Writer {
    pub fn start(conn: Connection, max_batch: usize, mode: Mode) -> Result<Self, StoreError> {
        Ok(match mode {
            Mode::Inline => Self::Inline(Inline::new(conn, max_batch)),
            Mode::Thread => Self::Thread(Threaded::start(conn, max_batch)?),
        })
    }

    pub async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        match self {
            Self::Inline(w) => w.write(f).await,
            Self::Thread(w) => w.write(f).await,
        }
    }

    pub async fn close(&self) {
        match self {
            Self::Inline(w) => w.close(),
            Self::Thread(w) => w.close().await,
        }
    }
}

/// A job and the oneshot that answers its caller.
fn job<R, F>(f: F) -> (Job, oneshot::Receiver<Result<R, StoreError>>)
where
    R: Send + 'static,
    F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
{
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
    (job, reply_rx)
}

/// Commits on the callers' own tasks (see the module doc).
pub struct Inline {
    queue: Mutex<Queue>,
    conn: Mutex<Connection>,
    max_batch: usize,
    /// Batches committed since the start: every [`WAL_CHECK_EVERY`]th checks the WAL's size.
    batches: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    /// A committer is active: it commits everything queued before it stops.
    committing: bool,
    closed: bool,
}

impl Inline {
    fn new(conn: Connection, max_batch: usize) -> Self {
        Self {
            queue: Mutex::new(Queue::default()),
            conn: Mutex::new(conn),
            max_batch: max_batch.max(1),
            batches: std::sync::atomic::AtomicU64::new(0),
        }
    }

    async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let (job, reply) = job(f);
        let lead = {
            let mut queue = self.queue.lock().map_err(|_| StoreError::Closed)?;
            if queue.closed {
                return Err(StoreError::Closed);
            }
            queue.jobs.push(job);
            !std::mem::replace(&mut queue.committing, true)
        };
        if lead {
            // Whatever happens to this task from here (even dropped while yielding), the
            // guard commits what is queued: no write is ever left waiting for a committer.
            let guard = CommitOnDrop(self);
            tokio::task::yield_now().await;
            drop(guard);
        }
        reply.await.map_err(|_| StoreError::Closed)?
    }

    /// Commits batches until the queue is empty, then stops being the committer.
    fn commit_all(&self) {
        loop {
            let jobs: Vec<Job> = {
                let Ok(mut queue) = self.queue.lock() else {
                    return;
                };
                if queue.jobs.is_empty() {
                    queue.committing = false;
                    return;
                }
                let n = queue.jobs.len().min(self.max_batch);
                queue.jobs.drain(..n).collect()
            };
            let Ok(conn) = self.conn.lock() else {
                // A panic while committing poisoned the connection: answer every caller.
                if let Ok(mut queue) = self.queue.lock() {
                    queue.closed = true;
                    queue.committing = false;
                    queue.jobs.clear();
                }
                return;
            };
            commit_batch(&conn, jobs);
            // Counted across committers: a committer often commits one batch, so a count of
            // its own would never reach the check (the WAL grew to 14 GB in a 650k-run test).
            let batches = self
                .batches
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
            if batches.is_multiple_of(WAL_CHECK_EVERY) {
                bound_wal(&conn);
            }
        }
    }

    /// Refuses later writes and returns once every write queued before is committed.
    fn close(&self) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.closed = true;
        }
        // Nothing is queued from now on: commit what is left here, or wait for the active
        // committer's batch (it holds the connection) and look again.
        loop {
            let lead = match self.queue.lock() {
                Ok(queue) if !queue.committing && queue.jobs.is_empty() => return,
                Ok(mut queue) => !std::mem::replace(&mut queue.committing, true),
                Err(_) => return,
            };
            if lead {
                self.commit_all();
            } else {
                drop(self.conn.lock());
            }
        }
    }
}

/// Commits the queue when dropped (see [`Inline::write`]).
struct CommitOnDrop<'a>(&'a Inline);

impl Drop for CommitOnDrop<'_> {
    fn drop(&mut self) {
        self.0.commit_all();
    }
}

/// Runs `jobs` in one transaction and answers each after the commit.
fn commit_batch(conn: &Connection, jobs: Vec<Job>) {
    if let Err(error) = conn
        .prepare_cached("BEGIN IMMEDIATE")
        .and_then(|mut s| s.execute([]))
    {
        // Another process holds the database past the busy timeout. Running the jobs outside a
        // transaction would commit each on its own, so they are dropped unrun: their callers get
        // `StoreError::Closed` and nothing is written.
        tracing::error!(%error, "store writer could not begin a transaction");
        return;
    }
    let replies: Vec<Reply> = jobs.into_iter().map(|job| job(conn)).collect();
    let commit = conn
        .prepare_cached("COMMIT")
        .and_then(|mut s| s.execute([]))
        .map(|_| ())
        .map_err(StoreError::from);
    if commit.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    for reply in replies {
        reply(commit.as_ref().map(|_| ()));
    }
}

/// Commits on a dedicated thread.
pub struct Threaded {
    tx: std::sync::Mutex<Option<mpsc::Sender<Job>>>,
    done: std::sync::Mutex<Option<oneshot::Receiver<()>>>,
}

impl Threaded {
    fn start(conn: Connection, max_batch: usize) -> Result<Self, StoreError> {
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

    async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
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
        let (job, reply) = job(f);
        sender.send(job).await.map_err(|_| StoreError::Closed)?;
        reply.await.map_err(|_| StoreError::Closed)?
    }

    async fn close(&self) {
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
    let mut batches: u64 = 0;
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = Vec::with_capacity(max_batch.min(64));
        jobs.push(first);
        while jobs.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&conn, jobs);
        batches += 1;
        if batches.is_multiple_of(WAL_CHECK_EVERY) {
            bound_wal(&conn);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::sync::Arc;

    use super::*;

    fn writer(mode: Mode) -> (tempfile::TempDir, Arc<Writer>) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.execute_batch(
            // As the store configures it: no automatic checkpoints, WAL truncated to the limit.
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
             PRAGMA journal_size_limit=67108864;
             CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT);",
        )
        .unwrap();
        (dir, Arc::new(Writer::start(conn, 64, mode).unwrap()))
    }

    fn insert(k: i64) -> impl FnOnce(&Connection) -> Result<i64, StoreError> + Send + 'static {
        move |conn| {
            conn.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", [k])?;
            Ok(k)
        }
    }

    async fn count(w: &Writer) -> i64 {
        w.write(|conn| Ok(conn.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))?))
            .await
            .unwrap()
    }

    /// Many tasks writing at once: each gets its own answer, and a failing write (duplicate
    /// key) is rolled back alone while the writes committed with it stay.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_commits_and_fail_alone() {
        for mode in [Mode::Inline, Mode::Thread] {
            let (_dir, w) = writer(mode);
            let tasks: Vec<_> = (0..200)
                .map(|i| {
                    let w = w.clone();
                    // Every tenth write repeats the key of the write before it.
                    let k = if i % 10 == 9 { i - 1 } else { i };
                    tokio::spawn(async move { w.write(insert(k)).await })
                })
                .collect();
            let mut ok = 0;
            let mut failed = 0;
            for t in tasks {
                match t.await.unwrap() {
                    Ok(_) => ok += 1,
                    Err(StoreError::Sqlite(_)) => failed += 1,
                    Err(e) => panic!("{mode:?}: {e}"),
                }
            }
            assert_eq!((ok, failed), (180, 20), "{mode:?}");
            assert_eq!(count(&w).await, 180, "{mode:?}");
        }
    }

    /// A committer whose task is dropped while it lets others queue still commits what was
    /// queued: no caller waits forever.
    #[tokio::test]
    async fn a_dropped_committer_still_commits_the_queue() {
        let (_dir, w) = writer(Mode::Inline);
        let leader = w.write(insert(1));
        let mut leader = Box::pin(leader);
        // First poll: queued, leads, yields.
        assert!(futures_poll_once(leader.as_mut()).await.is_none());
        let follower = tokio::spawn({
            let w = w.clone();
            async move { w.write(insert(2)).await }
        });
        tokio::task::yield_now().await;
        drop(leader);
        assert_eq!(follower.await.unwrap().unwrap(), 2);
        assert_eq!(count(&w).await, 2);
    }

    /// The WAL stays bounded when every commit has its own committer (the inline writer's
    /// usual case at low load): the size check counts batches across committers.
    #[tokio::test]
    async fn the_wal_is_bounded_across_committers() {
        let (dir, w) = writer(Mode::Inline);
        // Each write appends a ~64 KiB row; no checkpointer runs, so only the writer's own
        // RESTART bound keeps the WAL from growing past its limit.
        for k in 0..2500 {
            w.write(move |conn| {
                conn.execute(
                    "INSERT INTO t (k, v) VALUES (?1, ?2)",
                    rusqlite::params![k, "x".repeat(64 * 1024)],
                )?;
                Ok(())
            })
            .await
            .unwrap();
        }
        let wal = std::fs::metadata(dir.path().join("w.db-wal"))
            .unwrap()
            .len();
        assert!(wal < 2 * WAL_LIMIT_BYTES, "WAL grew to {wal} bytes");
    }

    /// Close commits what is queued and refuses later writes.
    #[tokio::test]
    async fn close_refuses_later_writes() {
        for mode in [Mode::Inline, Mode::Thread] {
            let (_dir, w) = writer(mode);
            w.write(insert(1)).await.unwrap();
            w.close().await;
            assert!(
                matches!(w.write(insert(2)).await, Err(StoreError::Closed)),
                "{mode:?}"
            );
        }
    }

    async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
        let mut f = f;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
