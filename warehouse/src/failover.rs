//! Several ClickHouse endpoints behind one client (`clickhouse.url` and
//! `clickhouse.failover_urls`): the replicas of a cluster, any of which can take every query and
//! insert (the tables services use are Distributed, `crate::cluster`).
//!
//! The failover is at the connection: the HTTP client asks [`FailoverConnector`] for a connection
//! and it connects to the endpoint that answered last, else the next ones in turn. A request
//! that fails on a node that died is retried by its caller as every ClickHouse error is (the
//! aggregator's inserts, the evaluation pass, the notifier's ledger); the retry's new connection
//! then reaches a live replica. An INSERT retried there is stored once: the same rows make the
//! same blocks, which the replicated tables deduplicate (docs/scaling.md).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

/// How long a connection attempt to one endpoint may take before the next is tried: a replica
/// that is down but not refusing (a dead host) must not hold every request up for long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The crate's own default: ClickHouse closes idle keep-alive connections after 3 s.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(2);

/// A hyper connector over several `host:port` endpoints; clones share which one is current.
#[derive(Clone, Debug)]
pub struct FailoverConnector {
    endpoints: Arc<Vec<String>>,
    current: Arc<AtomicUsize>,
}

impl FailoverConnector {
    /// Over `endpoints` (`host:port`), the first preferred.
    pub fn new(endpoints: Vec<String>) -> Self {
        assert!(!endpoints.is_empty(), "at least one endpoint");
        Self { endpoints: Arc::new(endpoints), current: Arc::default() }
    }

    /// The endpoint the last connection went to.
    pub fn current(&self) -> &str {
        &self.endpoints[self.current.load(Ordering::Relaxed) % self.endpoints.len()]
    }

    /// The `clickhouse` client over these endpoints (its URL's host is only a label).
    pub fn client(self) -> clickhouse::Client {
        let http = HyperClient::builder(TokioExecutor::new()).pool_idle_timeout(POOL_IDLE_TIMEOUT).build(self);
        clickhouse::Client::with_http_client(http).with_url("http://clickhouse-replicas")
    }

    /// A connection to the current endpoint, else to the next that accepts one.
    async fn connect(self) -> Result<TokioIo<TcpStream>, std::io::Error> {
        let n = self.endpoints.len();
        let first = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for i in 0..n {
            let at = (first + i) % n;
            let endpoint = &self.endpoints[at];
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(endpoint.as_str())).await {
                Ok(Ok(stream)) => {
                    stream.set_nodelay(true)?;
                    if at != first % n {
                        tracing::warn!(from = %self.endpoints[first % n], to = %endpoint, "ClickHouse failover");
                        self.current.store(at, Ordering::Relaxed);
                    }
                    return Ok(TokioIo::new(stream));
                }
                Ok(Err(e)) => last = Some(e),
                Err(_) => {
                    last = Some(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{endpoint}: timed out")))
                }
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no endpoint")))
    }
}

impl tower_service::Service<Uri> for FailoverConnector {
    type Response = TokioIo<TcpStream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    /// The URI's own host is ignored: the endpoints are this connector's.
    fn call(&mut self, _: Uri) -> Self::Future {
        Box::pin(self.clone().connect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// An HTTP server answering 200 to every request, counting them.
    async fn answering(hits: Arc<AtomicUsize>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let hits = hits.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    let _ = socket.read(&mut buf).await;
                    hits.fetch_add(1, Ordering::SeqCst);
                    let _ =
                        socket.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                });
            }
        });
        addr
    }

    /// An address nothing listens on (a replica that died).
    async fn dead() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().to_string()
    }

    #[tokio::test]
    async fn a_refused_endpoint_is_passed_over_and_the_live_one_kept() {
        let hits = Arc::new(AtomicUsize::new(0));
        let (gone, alive) = (dead().await, answering(hits.clone()).await);
        let connector = FailoverConnector::new(vec![gone, alive.clone()]);
        let client = connector.clone().client();
        client.query("SELECT 1").execute().await.unwrap_or_else(|e| panic!("{e}"));
        client.query("SELECT 2").execute().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(hits.load(Ordering::SeqCst), 2, "both requests reached the live endpoint");
        assert_eq!(connector.current(), alive, "the next connection goes straight to the live endpoint");
    }

    #[tokio::test]
    async fn with_every_endpoint_down_the_error_reaches_the_caller() {
        let connector = FailoverConnector::new(vec![dead().await, dead().await]);
        let err = connector.client().query("SELECT 1").execute().await.unwrap_err();
        assert!(matches!(err, clickhouse::error::Error::Network(_)), "{err:?}");
    }
}
