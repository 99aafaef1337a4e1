//! WAL checkpoints on a background thread. The writer connection has autocheckpoint off, so a
//! commit never stalls to copy the WAL into the database; this thread does it with PASSIVE
//! checkpoints (never blocking the writer or readers) every 250 ms, and a final one when the
//! store is dropped.

use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

use super::StoreError;

/// Handle that stops the thread when dropped.
pub struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    pub fn start(conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(Duration::from_secs(5))?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("crane-store-checkpoint".into())
            .spawn(move || {
                loop {
                    let done = !matches!(
                        stopped.recv_timeout(Duration::from_millis(250)),
                        Err(mpsc::RecvTimeoutError::Timeout)
                    );
                    if let Err(error) =
                        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(%error, "WAL checkpoint failed");
                    }
                    if done {
                        break;
                    }
                }
            })
            .map_err(|source| StoreError::DataDir {
                path: "checkpoint thread".into(),
                source,
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
