//! A real headless Chromium for the console's browser tests, driven over WebDriver
//! (`fantoccini`): [`Browser::start`] spawns its own chromedriver on a free port and opens a
//! session; the browser ends with [`Browser::stop`] or on drop (the session first, then that
//! chromedriver, by its own pid — never by name, other tests may run their own).
//!
//! The chromedriver is `UPTAKE_TEST_CHROMEDRIVER` (set by `deploy/local/test.sh`; Debian's
//! `chromium-driver`), else `chromedriver` on the PATH. Its temp directory (`TMPDIR`, which
//! Chromium inherits) is one of the browser's own, removed when it stops: chromedriver's
//! profile and Chromium's singleton-socket directory would otherwise stay behind in `/tmp` after
//! every session, since the session's end kills Chromium before it tidies up. Tests using it
//! are `#[ignore]`d like every end-to-end test and run with `--include-ignored` against the
//! real stack.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tokio::process::{Child, Command};

/// The window every test and screenshot uses: a laptop screen.
pub const WINDOW: (u32, u32) = (1366, 900);

/// How long [`Browser::soon`] and [`Browser::arrive`] wait for a page.
const PATIENCE: Duration = Duration::from_secs(10);

/// A headless Chromium session and the chromedriver serving it. Derefs to the session
/// ([`Client`]): `browser.goto(url)`, `browser.find(Locator::Css(..))`.
pub struct Browser {
    /// `None` once stopped.
    driver: Option<Client>,
    chromedriver: Option<Child>,
    /// The session's own URL on chromedriver (`…/session/ID`): what ends it.
    session: String,
    /// chromedriver's and Chromium's `TMPDIR`, removed once both have exited.
    scratch: PathBuf,
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session (1366×900, no sandbox:
    /// tests may run as root in a container).
    pub async fn start() -> Self {
        let program = std::env::var("UPTAKE_TEST_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        Self::start_with(&program).await
    }

    /// [`Self::start`] with chromedriver at `program`.
    async fn start_with(program: &str) -> Self {
        let port = crate::free_port();
        let scratch = std::env::temp_dir().join(format!("uptake-browser-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&scratch).expect("creating the browser's temp directory");
        let mut child = Command::new(program)
            .arg(format!("--port={port}"))
            .env("TMPDIR", &scratch)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                // Nothing owns the directory yet: a missing chromedriver would leave it behind.
                let _ = std::fs::remove_dir_all(&scratch);
                panic!("starting {program}: {e} (deploy/local/test.sh installs chromium-driver)")
            });
        let url = format!("http://127.0.0.1:{port}");
        wait_until_ready(&url, &mut child).await;
        let (w, h) = WINDOW;
        let window = format!("--window-size={w},{h}");
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            &window,
        ];
        let mut options = json!({ "args": args });
        if let Ok(binary) = std::env::var("UPTAKE_TEST_CHROMIUM") {
            options["binary"] = json!(binary);
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), options);
        let driver = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("a Chromium session via {url}: {e}"));
        let id = driver.session_id().await.ok().flatten().expect("a session id");
        let session = format!("{url}/session/{id}");
        let browser = Self { driver: Some(driver), chromedriver: Some(child), session, scratch };
        browser.fit_viewport().await;
        browser
    }

    /// The temp directory of this browser's chromedriver and Chromium (gone once stopped).
    pub fn temp_dir(&self) -> &Path {
        &self.scratch
    }

    /// Saves a PNG of the visible page (the 1366×900 window) to `path`, creating its folder.
    pub async fn screenshot(&self, path: impl AsRef<Path>) {
        let path = path.as_ref();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("creating the screenshot folder");
        }
        let png = self.driver().screenshot().await.unwrap_or_else(|e| panic!("screenshot {}: {e}", path.display()));
        std::fs::write(path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// The first element matching `css`, waiting for it up to 10 s. Any error is retried, not
    /// only "no such element": a command sent while a click's navigation is starting is
    /// answered "aborted by navigation" by chromedriver, which is not a failure of the page.
    pub async fn soon(&self, css: &str) -> Element {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.driver().find(Locator::Css(css)).await {
                Ok(e) => return e,
                Err(e) => assert!(Instant::now() < deadline, "no {css} on {}: {e}", self.path().await),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (10 s at most) until the page's path and query start with `prefix`: a click on a
    /// link or submit button returns before the next page has arrived.
    pub async fn arrive(&self, prefix: &str) {
        let deadline = Instant::now() + PATIENCE;
        while !self.path().await.starts_with(prefix) {
            assert!(Instant::now() < deadline, "still on {} instead of {prefix}", self.path().await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The current page's path and query (`/inbox?scope=all`); empty while chromedriver cannot
    /// say (mid-navigation), so callers polling for a page simply poll again.
    pub async fn path(&self) -> String {
        match self.driver().current_url().await {
            Ok(url) => match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_owned(),
            },
            Err(_) => String::new(),
        }
    }

    /// Ends the session (Chromium exits), then stops this browser's chromedriver.
    pub async fn stop(mut self) {
        if let Some(driver) = self.driver.take() {
            let _ = driver.close().await;
        }
        if let Some(mut child) = self.chromedriver.take() {
            let _ = child.kill().await;
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
    }

    /// `--window-size` sizes the window, and a headless window still has a toolbar's height of
    /// frame: grow the window by the difference so the page itself — and a screenshot — is 1366×900.
    async fn fit_viewport(&self) {
        let frame = self
            .driver()
            .execute("return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight];", vec![])
            .await
            .ok()
            .and_then(|v| serde_json::from_value::<(u32, u32)>(v).ok())
            .expect("the window's frame size");
        let (w, h) = WINDOW;
        self.driver().set_window_rect(0, 0, w + frame.0, h + frame.1).await.expect("resizing the window");
    }

    fn driver(&self) -> &Client {
        self.driver.as_ref().expect("the browser is running")
    }
}

impl Deref for Browser {
    type Target = Client;

    fn deref(&self) -> &Client {
        self.driver()
    }
}

impl Drop for Browser {
    /// A test that panicked did not call [`Browser::stop`]: end the session, so Chromium exits
    /// (it would outlive its chromedriver), then kill our chromedriver by its pid.
    fn drop(&mut self) {
        if self.driver.take().is_some() {
            // A DELETE of our own, on a thread with its own runtime: the test's runtime may be
            // the one unwinding, and the client's own session task runs on it.
            let session = self.session.clone();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
                rt.block_on(async {
                    reqwest::Client::new().delete(session).timeout(Duration::from_secs(10)).send().await
                })
            })
            .join();
        }
        if let Some(mut child) = self.chromedriver.take() {
            let _ = child.start_kill();
            let _ = std::fs::remove_dir_all(&self.scratch);
        }
    }
}

/// Polls chromedriver's `/status` until it is ready (10 s), failing early if it exited.
async fn wait_until_ready(url: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let http = reqwest::Client::new();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("chromedriver exited at start: {status}");
        }
        let ready = match http.get(format!("{url}/status")).send().await {
            Ok(r) => r.json::<serde_json::Value>().await.is_ok_and(|v| v["value"]["ready"] == true),
            Err(_) => false,
        };
        if ready {
            return;
        }
        assert!(Instant::now() < deadline, "chromedriver at {url} not ready within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::Browser;

    #[tokio::test]
    async fn a_chromedriver_that_does_not_start_leaves_no_temp_directory() {
        let started = tokio::spawn(Browser::start_with("/nonexistent/chromedriver")).await;
        assert!(started.is_err_and(|e| e.is_panic()), "no chromedriver, no browser");
        let ours = format!("uptake-browser-{}-", std::process::id());
        let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(&ours))
            .collect();
        assert!(left.is_empty(), "left in the temp directory: {left:?}");
    }
}
