//! testkit's headless Chromium works: a page served by a local server is rendered, its elements
//! are found over WebDriver, a form is submitted, and a screenshot is the 1366×900 window.
//!
//! Run by `deploy/local/test.sh` (it installs chromium and chromium-driver and sets
//! UPTAKE_TEST_CHROMEDRIVER); ignored by a bare `cargo test`.

use axum::routing::get;
use fantoccini::Locator;

const PAGE: &str = r#"<!doctype html><title>kit</title>
<form id="f" method="get" action="/done"><input name="q"><button type="submit">go</button></form>"#;

#[tokio::test]
#[ignore = "needs Chromium and chromedriver: run deploy/local/test.sh"]
async fn a_headless_chromium_renders_submits_and_screenshots() {
    let app = axum::Router::new().route("/", get(|| async { axum::response::Html(PAGE) })).route(
        "/done",
        get(|q: axum::extract::Query<std::collections::HashMap<String, String>>| async move {
            axum::response::Html(format!("<p id=\"got\">{}</p>", q.get("q").cloned().unwrap_or_default()))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let browser = testkit::browser::Browser::start().await;
    browser.goto(&url).await.unwrap();
    assert_eq!(browser.title().await.unwrap(), "kit");
    browser.find(Locator::Css("#f input[name=q]")).await.unwrap().send_keys("hello").await.unwrap();
    browser.find(Locator::Css("#f button")).await.unwrap().click().await.unwrap();
    // A click returns before the next page is there: wait for it (a find sent while the
    // navigation starts is refused "aborted by navigation"; `soon` asks again).
    browser.arrive("/done?q=hello").await;
    let got = browser.soon("#got").await.text().await.unwrap();
    assert_eq!(got, "hello");

    let path = std::env::temp_dir().join(format!("uptake-browser-{}.png", std::process::id()));
    browser.screenshot(&path).await;
    let png = std::fs::read(&path).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let size = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!((size(16), size(20)), testkit::browser::WINDOW, "the IHDR width and height");
    std::fs::remove_file(&path).unwrap();
    let scratch = browser.temp_dir().to_owned();
    assert!(scratch.read_dir().unwrap().next().is_some(), "chromedriver's profile is in the browser's own TMPDIR");
    browser.stop().await;
    assert!(!scratch.exists(), "{} left behind", scratch.display());
}
