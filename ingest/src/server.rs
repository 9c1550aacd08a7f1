//! The HTTP/1 server under both listeners (API and admin).
//!
//! Written on hyper directly rather than `axum::serve`, which has no header-read deadline: a
//! client that opens a connection and trickles (or never finishes) its headers would hold it,
//! and its file descriptor, forever. Here every connection has a header deadline, the number of
//! open connections is capped, and shutdown drains open requests for a bounded time.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::metrics::Metrics;

/// How one listener treats its connections.
pub struct ServerLimits {
    /// Longest wait for a request's headers (also the idle time of a kept-alive connection).
    pub header_timeout: Duration,
    /// Open connections at most; beyond, new ones wait in the kernel's accept queue.
    pub max_connections: usize,
    /// How long shutdown waits for requests in progress before giving up on them.
    pub drain_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting, lets the
/// requests in progress finish (at most `drain_timeout`) and returns. `metrics`, when given,
/// counts open connections and header timeouts.
pub async fn serve_http(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    metrics: Option<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        // The slot is taken before accepting: at the cap, connections queue in the kernel
        // instead of costing us a descriptor and a task each.
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.expect("the connection semaphore is never closed"),
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
        };
        // Responses are small and written at once: do not let Nagle hold them back.
        let _ = stream.set_nodelay(true);
        let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router.clone()));
        let connection = graceful.watch(connection);
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Some(m) = &metrics {
                m.open_connections.inc();
            }
            if let Err(e) = connection.await {
                if e.is_timeout() {
                    if let Some(m) = &metrics {
                        m.header_timeouts.inc();
                    }
                }
                tracing::debug!(error = %e, "connection ended with an error");
            }
            if let Some(m) = &metrics {
                m.open_connections.dec();
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(timeout = ?limits.drain_timeout, "requests still open at shutdown were abandoned");
    }
}

/// Like `axum::serve`: errors about one connection (reset before accept) are skipped; others
/// (out of file descriptors) are logged and the loop backs off instead of spinning.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
