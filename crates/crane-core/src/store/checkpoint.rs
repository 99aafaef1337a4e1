//! WAL checkpoints on a background thread. The writer connection has autocheckpoint off, so a
//! commit never stalls to copy the WAL into the database; this thread does it with PASSIVE
//! checkpoints (never blocking the writer or readers) every 250 ms, and a final one when the
//! store is dropped.
//!
//! The thread runs at the lowest priority (nice 19). On a server sharing its cores with the
//! request path (or pinned to one core) a checkpoint is a burst of page copying; at normal
//! priority a request whose socket became readable during that burst waited for the scheduler's
//! slice (up to ~1 ms with EEVDF), which showed as the p99 of one connection. At nice 19 a
//! woken request preempts it at once, and it still gets a small share of a saturated core, so
//! the WAL keeps being copied (the writer's RESTART bound in `writer` remains the backstop).

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
                lower_priority();
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

/// Lowers the calling thread to nice 19 (no privileges needed); a failure is logged and the
/// thread runs at normal priority.
fn lower_priority() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    if let Err(error) = set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other),
    ) {
        tracing::debug!(?error, "could not lower the checkpoint thread's priority");
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The checkpoint thread runs at nice 19 (read back from /proc).
    #[test]
    fn the_checkpoint_thread_runs_at_the_lowest_priority() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("c.db")).unwrap();
        let _checkpointer = Checkpointer::start(conn).unwrap();
        let nice_of_checkpointer = || {
            std::fs::read_dir("/proc/self/task")
                .unwrap()
                .find_map(|task| {
                    let path = task.unwrap().path();
                    let comm = std::fs::read_to_string(path.join("comm")).unwrap();
                    if !comm.starts_with("crane-store-che") {
                        return None;
                    }
                    let stat = std::fs::read_to_string(path.join("stat")).unwrap();
                    // Fields after the command's closing parenthesis; nice is field 19.
                    let rest = &stat[stat.rfind(')').unwrap() + 2..];
                    rest.split(' ').nth(16).map(|n| n.parse::<i32>().unwrap())
                })
        };
        // The thread lowers itself as its first act: wait until it has.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if nice_of_checkpointer() == Some(19) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "nice stayed {:?}",
                nice_of_checkpointer()
            );
            std::thread::yield_now();
        }
    }
}
