//! The accept loop: serves the router over HTTP/1.1 with hyper directly (axum's `serve` exposes
//! none of the connection limits), one task per connection.
//!
//! - A header read timeout (hyper's, driven by a tokio timer): a client that does not send a
//!   complete request head in time — a slowloris, or an idle keep-alive connection — is
//!   disconnected.
//! - A cap on the request head's size: hyper answers `431` and closes the connection.
//! - A cap on open connections: a semaphore permit is taken before each `accept`, so at the cap
//!   the loop stops accepting and new connections wait in the kernel's listen backlog until a
//!   served one closes (waiting, not refusing: a burst is served late rather than failed).
//! - TCP_NODELAY on every accepted socket.
//! - Graceful shutdown: on the signal the listener closes, every connection finishes the
//!   request it is serving and closes, and the loop returns when the last one has (bounded by
//!   the header read and request timeouts).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::serve::{Listener, ListenerExt};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{Semaphore, watch};

use crate::limits::HttpLimits;

/// Most connections the loop can count (a `u32` of semaphore permits is taken back at the end).
const MAX_CONNECTIONS: usize = 1_000_000;

/// How often, at most, the loop logs that it is at its connection cap.
const CAP_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// Serves `app` on `listener` until `shutdown` completes, then waits for the open connections
/// to finish.
pub(crate) async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: &HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let mut listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::warn!(%error, "could not set TCP_NODELAY");
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes);
    let max = limits.max_connections.clamp(1, MAX_CONNECTIONS);
    let permits = Arc::new(Semaphore::new(max));
    // Connections watch this channel; dropping the sender tells them to shut down.
    let (stop_tx, stop_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    let mut warned: Option<Instant> = None;
    loop {
        if permits.available_permits() == 0
            && warned.is_none_or(|at| at.elapsed() >= CAP_WARNING_INTERVAL)
        {
            tracing::warn!(
                max_connections = max,
                "connection limit reached: new connections wait in the listen backlog until one closes"
            );
            warned = Some(Instant::now());
        }
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // never closed
            },
        };
        // axum's listener retries failed accepts itself (backing off on e.g. EMFILE).
        let (io, _remote) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let conn = http
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(app.clone()))
            .with_upgrades();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.as_mut().await
                }
            };
            if let Err(error) = result {
                // Timeouts, oversized heads, clients that went away: the client's problem.
                tracing::debug!(%error, "connection closed with an error");
            }
        });
    }
    drop(listener);
    drop(stop_tx);
    // Every permit back means every connection has finished.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
}
