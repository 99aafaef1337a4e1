//! A small pool of read-only SQLite connections: reads of unbounded size run on tokio's
//! blocking threads ([`ReadPool::read`]); the short reads on every run's path (one run by id,
//! one page of todos) run on the calling thread when a connection is free
//! ([`ReadPool::read_now`]), which saves two thread hand-offs per read — on a server pinned to
//! one core each hand-off is a context switch that the request waits for.

use std::sync::Mutex;

use rusqlite::Connection;
use tokio::sync::Semaphore;

use super::StoreError;

/// Read-only connections; a semaphore guarantees one is free when a permit is held.
pub struct ReadPool {
    conns: std::sync::Arc<Mutex<Vec<Connection>>>,
    permits: std::sync::Arc<Semaphore>,
}

impl ReadPool {
    pub fn new(conns: Vec<Connection>) -> Self {
        let n = conns.len();
        Self {
            conns: std::sync::Arc::new(Mutex::new(conns)),
            permits: std::sync::Arc::new(Semaphore::new(n)),
        }
    }

    /// Runs `f` on the calling thread when a connection is free at once, else like
    /// [`ReadPool::read`]. Only for reads bounded to a few rows: the caller's async worker is
    /// blocked while `f` runs.
    pub async fn read_now<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return self.read(f).await;
        };
        let conn = self
            .conns
            .lock()
            .map_err(|_| StoreError::Closed)?
            .pop()
            .ok_or(StoreError::Closed)?;
        let result = f(&conn);
        if let Ok(mut pool) = self.conns.lock() {
            pool.push(conn);
        }
        drop(permit);
        result
    }

    pub async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let conns = self.conns.clone();
        tokio::task::spawn_blocking(move || {
            let conn = conns
                .lock()
                .map_err(|_| StoreError::Closed)?
                .pop()
                .ok_or(StoreError::Closed)?;
            let result = f(&conn);
            if let Ok(mut pool) = conns.lock() {
                pool.push(conn);
            }
            drop(permit);
            result
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }
}
