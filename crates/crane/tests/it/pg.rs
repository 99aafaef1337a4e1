//! PostgreSQL for the end-to-end tests: a fresh database per test on the server
//! `CRANE_TEST_DATABASE_URL` names (default `postgres://postgres@127.0.0.1:5432/test`), and a
//! TCP proxy in front of it that a test can take down and bring back (the database "going
//! away" without stopping the server other tests share).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::Connection;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The server test databases are created on.
pub fn admin_url() -> String {
    std::env::var("CRANE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// True when the end-to-end suite runs on PostgreSQL (`CRANE_TEST_STORE=postgres`).
pub fn suite_on_postgres() -> bool {
    std::env::var("CRANE_TEST_STORE").is_ok_and(|v| v == "postgres")
}

/// A database created for one test, dropped when the value is.
pub struct TestDatabase {
    name: String,
}

impl TestDatabase {
    /// Creates `crane_e2e_<uuid>` (panics when no PostgreSQL answers: the test needs one).
    pub async fn create() -> Self {
        let admin = admin_url();
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin} does not answer: {e}"));
        let name = format!("crane_e2e_{}", uuid::Uuid::now_v7().simple());
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create the test database");
        let _ = conn.close().await;
        Self { name }
    }

    /// The database's URL.
    pub fn url(&self) -> String {
        self.url_via(None)
    }

    /// The database's URL through another port (a [`Proxy`]) on 127.0.0.1.
    pub fn url_via(&self, port: Option<u16>) -> String {
        let mut url = url_of(&admin_url());
        url.set_path(&format!("/{}", self.name));
        if let Some(port) = port {
            let _ = url.set_host(Some("127.0.0.1"));
            let _ = url.set_port(Some(port));
        }
        url.to_string()
    }

    /// Runs one SQL statement that returns a count.
    pub async fn count(&self, sql: &str) -> i64 {
        let mut conn = sqlx::PgConnection::connect(&self.url())
            .await
            .expect("connect");
        let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut conn)
            .await
            .expect("count query");
        n
    }
}

fn url_of(s: &str) -> reqwest::Url {
    reqwest::Url::parse(s).expect("CRANE_TEST_DATABASE_URL is a URL")
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
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

/// A TCP proxy to the PostgreSQL server. While down it cuts every open connection and
/// refuses new ones (accepts and closes them at once), as a database that went away would.
pub struct Proxy {
    pub port: u16,
    down: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Proxy {
    pub async fn start() -> Self {
        let target = url_of(&admin_url());
        let target = format!(
            "{}:{}",
            target.host_str().unwrap_or("127.0.0.1"),
            target.port().unwrap_or(5432)
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let down = Arc::new(AtomicBool::new(false));
        let (cut, _) = watch::channel(0u64);
        let (down2, cut2) = (down.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if down2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let mut cut = cut2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { port, down, cut }
    }

    /// Cuts every connection and refuses new ones until [`Proxy::up`].
    pub fn down(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    /// Accepts connections again.
    pub fn up(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}
