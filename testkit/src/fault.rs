//! ClickHouse faults on demand: an HTTP proxy in front of the shared server that answers chosen
//! INSERTs with an error, as a real server would (a bad value, too many partitions, overload),
//! and a private ClickHouse server the test owns (e.g. one not running in UTC).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

/// An INSERT as the proxy saw it.
pub struct Insert<'a> {
    /// The SQL (`INSERT INTO db.events FORMAT RowBinary`).
    pub query: &'a str,
    /// The rows, decompressed (RowBinary for the aggregator).
    pub body: &'a [u8],
}

/// The error a refused INSERT gets: an HTTP status and ClickHouse's error text.
#[derive(Debug, Clone)]
pub struct Fault {
    pub status: u16,
    pub body: String,
}

impl Fault {
    pub fn new(status: u16, body: &str) -> Self {
        Self { status, body: body.to_owned() }
    }
}

type Rule = Box<dyn Fn(&Insert<'_>) -> Option<Fault> + Send + Sync>;

struct Shared {
    target: String,
    client: reqwest::Client,
    rule: Mutex<Option<Rule>>,
    forwarded: AtomicU64,
    refused: AtomicU64,
}

/// An HTTP proxy to a ClickHouse server whose INSERTs a test can fail.
pub struct FaultProxy {
    pub port: u16,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Forwards 127.0.0.1:<port> to the ClickHouse HTTP endpoint `target` (`http://host:port`).
    pub async fn start(target: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            target: target.trim_end_matches('/').to_owned(),
            client: reqwest::Client::new(),
            rule: Mutex::new(None),
            forwarded: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        let app = axum::Router::new().fallback(forward).with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { port, shared }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// From now on, every INSERT for which `rule` returns a fault is answered with it (and not
    /// forwarded); the others reach the server.
    pub fn refuse_inserts(&self, rule: impl Fn(&Insert<'_>) -> Option<Fault> + Send + Sync + 'static) {
        *self.shared.rule.lock().unwrap() = Some(Box::new(rule));
    }

    /// Refuses every INSERT whose rows contain `marker` (e.g. a message id) with `fault`.
    pub fn refuse_inserts_containing(&self, marker: &str, fault: Fault) {
        let marker = marker.as_bytes().to_vec();
        self.refuse_inserts(move |i| i.body.windows(marker.len()).any(|w| w == marker).then(|| fault.clone()));
    }

    /// Forwards everything again.
    pub fn heal(&self) {
        *self.shared.rule.lock().unwrap() = None;
    }

    /// INSERTs forwarded to the server and answered 200 by it.
    pub fn inserts_stored(&self) -> u64 {
        self.shared.forwarded.load(Ordering::SeqCst)
    }

    /// INSERTs the proxy refused.
    pub fn inserts_refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return respond(StatusCode::BAD_REQUEST, HeaderMap::new(), "proxy: unreadable request body".into());
    };
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let url = reqwest::Url::parse(&format!("{}{path_and_query}", shared.target)).unwrap();
    let param = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    let query = param("query").unwrap_or_default();
    let is_insert = query.trim_start().get(..6).is_some_and(|s| s.eq_ignore_ascii_case("INSERT"));
    if is_insert {
        let rows = if param("decompress").as_deref() == Some("1") { decompress(&body) } else { body.to_vec() };
        let fault = shared.rule.lock().unwrap().as_ref().and_then(|rule| rule(&Insert { query: &query, body: &rows }));
        if let Some(fault) = fault {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            let mut headers = HeaderMap::new();
            if let Some(code) = fault
                .body
                .strip_prefix("Code: ")
                .map(|r| r.chars().take_while(char::is_ascii_digit).collect::<String>())
            {
                headers.insert("X-ClickHouse-Exception-Code", code.parse().unwrap());
            }
            return respond(StatusCode::from_u16(fault.status).unwrap(), headers, fault.body.into_bytes());
        }
    }
    let mut headers = parts.headers.clone();
    for h in ["host", "content-length", "transfer-encoding", "connection"] {
        headers.remove(h);
    }
    let sent = shared.client.request(parts.method, url).headers(headers).body(body).send().await;
    let Ok(answer) = sent else {
        return respond(StatusCode::BAD_GATEWAY, HeaderMap::new(), b"proxy: ClickHouse unreachable".to_vec());
    };
    let status = answer.status();
    let mut headers = answer.headers().clone();
    for h in ["content-length", "transfer-encoding", "connection"] {
        headers.remove(h);
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    if is_insert && status.is_success() {
        shared.forwarded.fetch_add(1, Ordering::SeqCst);
    }
    respond(status, headers, bytes.to_vec())
}

fn respond(status: StatusCode, headers: HeaderMap, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// ClickHouse's compressed framing, as the Rust client sends INSERTs: frames of a 16-byte
/// checksum, a method byte (0x82 = LZ4), the frame size (with its 9-byte header) and the
/// uncompressed size (u32 LE each), then an LZ4 block. Anything else is returned as it is.
fn decompress(mut body: &[u8]) -> Vec<u8> {
    let original = body;
    let mut out = Vec::new();
    while !body.is_empty() {
        if body.len() < 25 || body[16] != 0x82 {
            return original.to_vec();
        }
        let size = u32::from_le_bytes(body[17..21].try_into().unwrap()) as usize;
        let raw = u32::from_le_bytes(body[21..25].try_into().unwrap()) as usize;
        let Some(block) = body.get(25..16 + size) else { return original.to_vec() };
        match lz4_flex::block::decompress(block, raw) {
            Ok(rows) => out.extend(rows),
            Err(_) => return original.to_vec(),
        }
        body = &body[16 + size..];
    }
    out
}

/// A ClickHouse server owned by one test, in the given timezone (`<timezone>` of its config),
/// with its data in a temp directory. Killed (and its data deleted) when dropped.
pub struct OwnClickHouse {
    pub http_port: u16,
    dir: std::path::PathBuf,
    child: std::process::Child,
}

impl OwnClickHouse {
    pub async fn start(name: &str, timezone: &str) -> Self {
        let (http_port, tcp_port) = (crate::free_port(), crate::free_port());
        let dir = std::env::temp_dir().join(format!("uptake-clickhouse-{name}-{}-{http_port}", std::process::id()));
        for sub in ["data", "tmp", "log"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let d = dir.display().to_string();
        std::fs::write(
            dir.join("users.xml"),
            "<yandex><profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>\
             <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>\
             <profile>default</profile><quota>default</quota></default></users><quotas><default></default></quotas></yandex>",
        )
        .unwrap();
        std::fs::write(
            dir.join("config.xml"),
            format!(
                "<yandex><logger><level>warning</level><log>{d}/log/server.log</log><errorlog>{d}/log/error.log</errorlog></logger>\
                 <listen_host>127.0.0.1</listen_host><http_port>{http_port}</http_port><tcp_port>{tcp_port}</tcp_port>\
                 <path>{d}/data/</path><tmp_path>{d}/tmp/</tmp_path><users_config>{d}/users.xml</users_config>\
                 <default_profile>default</default_profile><default_database>default</default_database>\
                 <timezone>{timezone}</timezone><mark_cache_size>268435456</mark_cache_size></yandex>"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("log/stdout.log")).unwrap();
        let child = std::process::Command::new("/usr/sbin/clickhouse-server")
            .arg(format!("--config-file={d}/config.xml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("clickhouse-server (deploy/local/test.sh installs it)");
        let server = Self { http_port, dir, child };
        let deadline = Instant::now() + Duration::from_secs(60);
        let ping = format!("{}/ping", server.url());
        while reqwest::get(&ping).await.map_or(true, |r| !r.status().is_success()) {
            assert!(Instant::now() < deadline, "clickhouse-server did not start; see {d}/log");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }
}

impl Drop for OwnClickHouse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("clickhouse data and log kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
