//! Opens a fresh store of either backend for one test, and the macro that runs a test on both.

use std::sync::Arc;

use crane_core::store::{Store, StoreConfig};
use sqlx::Connection;

/// A store for one test; drops its database (PostgreSQL) or directory (SQLite) afterwards.
pub struct TestStore {
    pub store: Arc<Store>,
    /// The URL of this test's PostgreSQL database (to open more replicas on it).
    pub url: Option<String>,
    _dir: tempfile::TempDir,
    /// Data dirs of the other replicas (each replica has its own, so its own replica id).
    others: std::sync::Mutex<Vec<tempfile::TempDir>>,
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let Some(url) = &self.url else { return };
        let name = url.rsplit('/').next().unwrap_or_default().to_owned();
        // Dropping happens outside any runtime's async context: use a small one of our own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url()).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

impl std::ops::Deref for TestStore {
    type Target = Arc<Store>;
    fn deref(&self) -> &Arc<Store> {
        &self.store
    }
}

impl TestStore {
    /// The same replica (same data dir, so the same replica id) opened again, as after a
    /// restart.
    pub async fn reopened(&self, config: &StoreConfig) -> Arc<Store> {
        let config = StoreConfig {
            database_url: self.url.clone(),
            ..config.clone()
        };
        Store::connect(self._dir.path(), &config).await.unwrap()
    }

    /// Another store on the same database, as a second replica would open it.
    pub async fn another_replica(&self, config: &StoreConfig) -> Arc<Store> {
        let config = StoreConfig {
            database_url: self.url.clone(),
            ..config.clone()
        };
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(dir.path(), &config).await.unwrap();
        self.others.lock().unwrap().push(dir);
        store
    }
}

/// The server fresh test databases are created on.
pub fn admin_url() -> String {
    std::env::var("CRANE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn required() -> bool {
    std::env::var("CRANE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// A fresh SQLite store.
pub async fn sqlite(config: StoreConfig) -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &config).unwrap();
    TestStore {
        store,
        url: None,
        _dir: dir,
        others: Default::default(),
    }
}

/// A fresh PostgreSQL database and a store on it; `None` (skip) when no server answers and
/// PostgreSQL is not required.
pub async fn postgres(config: StoreConfig) -> Option<TestStore> {
    let admin = admin_url();
    let mut conn = match sqlx::PgConnection::connect(&admin).await {
        Ok(c) => c,
        Err(e) if !required() => {
            eprintln!(
                "skipping the PostgreSQL half: no server at {admin} ({e}); set CRANE_REQUIRE_POSTGRES=1 to fail instead"
            );
            return None;
        }
        Err(e) => panic!(
            "PostgreSQL is required (CRANE_REQUIRE_POSTGRES=1) but {admin} does not answer: {e}"
        ),
    };
    let name = format!("crane_t_{}", uuid::Uuid::now_v7().simple());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&format!("/{name}"));
    let url = url.to_string();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(
        dir.path(),
        &StoreConfig {
            database_url: Some(url.clone()),
            ..config
        },
    )
    .await
    .unwrap();
    Some(TestStore {
        store,
        url: Some(url),
        _dir: dir,
        others: Default::default(),
    })
}

/// Defines `$name` as two tests, `sqlite` and `postgres`, each calling `$body(store)` with a
/// fresh [`TestStore`] of its backend (default [`StoreConfig`], or the one given).
#[macro_export]
macro_rules! store_test {
    ($name:ident, $body:expr) => {
        store_test!($name, crane_core::store::StoreConfig::default(), $body);
    };
    ($name:ident, $config:expr, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let store = $crate::harness::sqlite($config).await;
                ($body)(store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(store) = $crate::harness::postgres($config).await {
                    ($body)(store).await;
                }
            }
        }
    };
}
