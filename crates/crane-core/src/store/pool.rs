//! A small pool of read-only SQLite connections used from blocking threads.

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
