//! The console in a real headless Chromium (WebDriver), against the real broker and ClickHouse
//! filled with a small loadgen book through ingest and the aggregator (`testkit::console`):
//! sign-in and its refusals, the book, an account's health history drawn from the stored
//! snapshots, and the alert workflow — a snooze (stored, published, out of the inbox, no webhook
//! until it ends by the console's injected clock) and a closure as churned (an outcome) — and the
//! admin's Privacy page (a suppression filed, stored, published; refused to a CSM).
//! Each page visited is saved as `console-<page>.png` (1366×900) in `target/screenshots`, or in
//! the folder `UPTAKE_TEST_SCREENSHOTS` names: `UPTAKE_TEST_SCREENSHOTS=docs/img` refreshes the
//! README's screenshots.
//!
//! Run by `deploy/local/test.sh` (the stack, Chromium and chromedriver); ignored by a bare
//! `cargo test`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aggregator::config::WebhookConfig;
use chrono::{NaiveDate, NaiveTime, Utc};
use console::Clock;
use fantoccini::elements::Element;
use fantoccini::Locator;
use serde_json::Value;
use testkit::browser::Browser;
use testkit::console::{seed_book, start_console, RunningConsole, SeededBook, PASSWORD};
use testkit::Stack;
use tokio::sync::OnceCell;

/// The other CSM, who alerts can be assigned to.
const COLLEAGUE: &str = "lee@vendor.example";

/// One seeded book for every test of this file (~10 s); each test acts on other alerts.
static SEEDED: OnceCell<(Stack, SeededBook)> = OnceCell::const_new();

async fn seeded() -> &'static (Stack, SeededBook) {
    SEEDED
        .get_or_init(|| async {
            let stack = Stack::from_env("console_browser");
            let book = seed_book(&stack).await;
            (stack, book)
        })
        .await
}

/// `console-<page>.png` in `UPTAKE_TEST_SCREENSHOTS` (`docs/img` to refresh the committed ones),
/// else in `target/screenshots`: a test run leaves the repository's files alone.
fn shot_path(page: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::var_os("UPTAKE_TEST_SCREENSHOTS")
        .map(|d| root.join(d))
        .unwrap_or_else(|| root.join("target").join("screenshots"));
    dir.join(format!("console-{page}.png"))
}

async fn shot(browser: &Browser, page: &str) {
    browser.screenshot(shot_path(page)).await;
}

/// The CSM who owns `account` (its `csm` trait in the book).
fn owner_of(seeded: &SeededBook, account: &str) -> String {
    seeded.book.accounts.iter().find(|a| a.id == account).expect("an account of the book").csm.to_owned()
}

async fn sign_in(browser: &Browser, console: &RunningConsole, user: &str, password: &str) {
    browser.goto(&console.at("/login")).await.unwrap();
    let form = browser.find(Locator::Css("form#login")).await.unwrap();
    form.find(Locator::Css("[name=username]")).await.unwrap().send_keys(user).await.unwrap();
    form.find(Locator::Css("[name=password]")).await.unwrap().send_keys(password).await.unwrap();
    form.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
}

async fn text(e: &Element) -> String {
    e.text().await.unwrap().trim().to_owned()
}

async fn attr(e: &Element, name: &str) -> String {
    e.attr(name).await.unwrap().unwrap_or_default()
}

/// Rows of `sql`, polled until `done` holds or 15 s pass.
async fn rows_until(stack: &Stack, sql: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let rows = stack.query(sql).await;
        if done(&rows) || Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs the local stack, Chromium and chromedriver: run deploy/local/test.sh"]
async fn signs_in_and_refuses_a_wrong_password_and_a_form_without_its_csrf_token() {
    let (stack, seeded) = seeded().await;
    // A non-at-risk account's alert: the other tests act on the at-risk ones.
    let target = seeded
        .open_alerts
        .iter()
        .find(|a| !seeded.at_risk.contains(&a.account_id))
        .or(seeded.open_alerts.last())
        .expect("an open alert");
    let user = owner_of(seeded, &target.account_id);
    let console = start_console(seeded.aggregator.clone(), &[&user, COLLEAGUE], "", Clock::fixed(Utc::now())).await;
    let browser = Browser::start().await;

    // Wrong password: the sign-in page again, with an error, answered 401.
    browser.goto(&console.at("/book")).await.unwrap();
    assert!(browser.path().await.starts_with("/login"), "a signed-out visitor is sent to sign in");
    shot(&browser, "login").await;
    sign_in(&browser, &console, &user, "not the password").await;
    let error = browser.soon(".error").await;
    assert_eq!(text(&error).await, "Wrong user name or password.");
    assert!(browser.find(Locator::Css("form#login")).await.is_ok(), "still the sign-in form");
    assert_eq!(wrong_password_status(&console, &user).await, 401);
    assert!(browser.get_named_cookie("uptake_session").await.is_err(), "no session after a wrong password");

    // The right one: the book.
    sign_in(&browser, &console, &user, PASSWORD).await;
    browser.arrive("/book").await;
    assert!(browser.find(Locator::Css("table#book")).await.is_ok());

    // A form posted without its CSRF token is refused with 403 and changes nothing: the inbox's
    // acknowledge form of `target`, its hidden token removed in the page before it is sent.
    browser.goto(&console.at("/inbox?scope=all")).await.unwrap();
    let row =
        browser.find(Locator::Css(&format!("tr[data-alert='{}']", target.alert_id))).await.expect("the alert listed");
    let ack = row.find(Locator::Css("form.ack")).await.expect("its acknowledge form");
    browser
        .execute("arguments[0].querySelector('input[name=csrf]').remove();", vec![serde_json::to_value(&ack).unwrap()])
        .await
        .unwrap();
    ack.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    let refused = browser.soon(".error").await;
    assert!(text(&refused).await.contains("CSRF"), "{}", text(&refused).await);
    shot(&browser, "csrf-refused").await;
    let session = browser.get_named_cookie("uptake_session").await.expect("signed in").value().to_owned();
    let status = reqwest::Client::new()
        .post(console.at(&format!("/alerts/{}/ack", target.alert_id)))
        .header("Cookie", format!("uptake_session={session}"))
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 403);
    let db = stack.database();
    let actions = stack
        .query(&format!("SELECT count() AS n FROM {db}.alert_actions WHERE alert_id = '{}'", target.alert_id))
        .await;
    assert_eq!(actions[0]["n"].to_string().trim_matches('"'), "0", "a refused form stores no action");
    browser.stop().await;
}

/// The status of a sign-in with a wrong password, over plain HTTP (the page's own cookie and token).
async fn wrong_password_status(console: &RunningConsole, user: &str) -> u16 {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let form = http.get(console.at("/login")).send().await.unwrap();
    let cookie = form.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let html = form.text().await.unwrap();
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).and_then(|s| s.split('"').next()).expect("a csrf field");
    let r = http
        .post(console.at("/login"))
        .header("Cookie", cookie)
        .form(&[("username", user), ("password", "wrong"), ("csrf", csrf), ("next", "/book")])
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

#[tokio::test]
#[ignore = "needs the local stack, Chromium and chromedriver: run deploy/local/test.sh"]
async fn finds_an_at_risk_account_in_the_book_and_sees_its_real_health_history() {
    let (stack, seeded) = seeded().await;
    let account = seeded.at_risk[0].clone();
    let user = owner_of(seeded, &account);
    let console = start_console(seeded.aggregator.clone(), &[&user, COLLEAGUE], "", Clock::fixed(Utc::now())).await;
    let browser = Browser::start().await;
    sign_in(&browser, &console, &user, PASSWORD).await;
    browser.arrive("/book").await;

    // The whole book, riskiest first; the account is in it, red or yellow, and opens.
    browser.goto(&console.at("/book?scope=all")).await.unwrap();
    shot(&browser, "book").await;
    let rows = browser.find_all(Locator::Css("table#book tbody tr[data-account]")).await.unwrap();
    assert_eq!(rows.len(), seeded.book.accounts.len(), "every account of the book");
    let row =
        browser.find(Locator::Css(&format!("tr[data-account='{account}']"))).await.expect("the at-risk account listed");
    let band = text(&row.find(Locator::Css("td.band")).await.unwrap()).await;
    assert!(band.contains("red") || band.contains("yellow"), "{account}: band {band:?}");
    row.find(Locator::Css("a.account")).await.unwrap().click().await.unwrap();
    browser.arrive(&format!("/accounts/{account}")).await;
    shot(&browser, "account").await;

    // One point per stored day of health, at the stored score.
    let mut drawn = BTreeMap::new();
    for p in browser.find_all(Locator::Css("svg#health-history circle.point")).await.unwrap() {
        drawn.insert(attr(&p, "data-day").await, attr(&p, "data-score").await);
    }
    let db = stack.database();
    let stored: BTreeMap<String, String> = stack
        .query(&format!(
            "SELECT toString(day) AS d, argMax(health_score, computed_at) AS score FROM {db}.account_health_daily
             WHERE account_id = '{account}' AND day BETWEEN toDate('{today}') - 89 AND toDate('{today}')
             GROUP BY day ORDER BY day",
            today = Utc::now().date_naive()
        ))
        .await
        .iter()
        .filter(|r| !r["score"].is_null())
        .map(|r| {
            let score: f64 = r["score"].as_f64().or_else(|| r["score"].as_str()?.parse().ok()).unwrap();
            (str_of(r, "d").to_owned(), format!("{score:.1}"))
        })
        .collect();
    assert!(stored.len() >= 60, "the backfilled days and today: {}", stored.len());
    assert_eq!(drawn, stored, "the chart's points are the stored snapshots");

    // The rules in force and the latest stored score.
    browser.goto(&console.at("/rules")).await.unwrap();
    let rules = browser.find_all(Locator::Css("table#rules tbody tr")).await.unwrap();
    assert!(rules.len() >= 6, "the shipped rules: {}", rules.len());
    let backtest = text(&browser.find(Locator::Css("#backtest")).await.unwrap()).await;
    let (from, to) = (seeded.history.1 - chrono::Days::new(27), seeded.history.1);
    assert!(backtest.contains(&from.to_string()) && backtest.contains(&to.to_string()), "{backtest}");
    shot(&browser, "rules").await;

    // Health and alerts agree: every red account's page shows an open alert to work, or says why
    // there is none.
    let red =
        stack.query(&format!("SELECT account_id FROM {db}.account_metrics FINAL WHERE health_band = 'red'")).await;
    for id in red.iter().map(|r| str_of(r, "account_id")) {
        browser.goto(&console.at(&format!("/accounts/{id}"))).await.unwrap();
        browser.soon("h1#account-name").await;
        let alerts = browser.find(Locator::Css("table#account-alerts")).await.is_ok();
        let why = browser.find(Locator::Css("#red-without-alert")).await.is_ok();
        assert!(alerts || why, "{id} is red with neither an open alert nor a reason on its page");
    }
    browser.stop().await;
}

/// A webhook receiver: every alert record POSTed to it.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Value>>>);

impl Receiver {
    async fn start(&self) -> String {
        let app = axum::Router::new()
            .route(
                "/hook",
                axum::routing::post(
                    |axum::extract::State(r): axum::extract::State<Receiver>, body: String| async move {
                        r.0.lock().unwrap().push(serde_json::from_str(&body).unwrap_or(Value::String(body)));
                        "ok"
                    },
                ),
            )
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    /// The statuses of the records of `alert_id` delivered, in order (the JSON format wraps the
    /// record: `{"delivery_id", "webhook", "alert"}`).
    fn statuses(&self, alert_id: &str) -> Vec<String> {
        let log = self.0.lock().unwrap();
        log.iter()
            .filter(|v| v["alert"]["alert_id"] == alert_id)
            .map(|v| str_of(&v["alert"], "status").to_owned())
            .collect()
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

#[tokio::test]
#[ignore = "needs the local stack, Chromium and chromedriver: run deploy/local/test.sh"]
async fn snoozes_one_alert_and_closes_another_as_churned() {
    // A book of its own: this test moves the evaluator a week ahead.
    let stack = Stack::from_env("console_workflow");
    let seeded = seed_book(&stack).await;
    let at_risk = seeded.at_risk_alerts();
    let (snoozed, closed) = (at_risk[0].clone(), at_risk[1].clone());
    let user = owner_of(&seeded, &snoozed.account_id);
    let now = Utc::now();
    let console = start_console(seeded.aggregator.clone(), &[&user, COLLEAGUE], "", Clock::fixed(now)).await;
    let db = stack.database();

    // The CSM's webhook (every record), served by the notifier from the start of the alerts
    // topic: the open alerts' firing records arrive.
    let receiver = Receiver::default();
    let hook = receiver.start().await;
    let mut cfg = seeded.aggregator.to_raw();
    cfg.notifier.webhooks = vec![webhook(&hook)];
    let cfg = cfg.build_and_validate().unwrap();
    let store = warehouse::Warehouse::new(&cfg.clickhouse);
    let producer: rdkafka::producer::FutureProducer = cfg.kafka.to_rdkafka_producer().create().unwrap();
    let metrics = Arc::new(aggregator::Telemetry::new());
    let (stop_notifier, notifier) = testkit::aggregator::start_notifier(&cfg, &store, &producer, metrics);
    let open = seeded.open_alerts.len();
    wait_for(|| receiver.len() >= open, Duration::from_secs(20)).await;
    assert_eq!(receiver.statuses(&snoozed.alert_id), ["firing"]);

    // Snooze: until a week from now, with a note.
    let browser = Browser::start().await;
    sign_in(&browser, &console, &user, PASSWORD).await;
    browser.arrive("/book").await;
    browser.goto(&console.at("/inbox?scope=all")).await.unwrap();
    shot(&browser, "inbox").await;
    let row = browser.find(Locator::Css(&format!("tr[data-alert='{}']", snoozed.alert_id))).await.expect("listed");
    let form = row.find(Locator::Css("form.snooze")).await.unwrap();
    let until: NaiveDate =
        attr(&form.find(Locator::Css("[name=until]")).await.unwrap(), "value").await.parse().unwrap();
    assert_eq!(until, (now + chrono::Duration::days(7)).date_naive(), "a week by default");
    form.find(Locator::Css("[name=note]")).await.unwrap().send_keys("QBR on Monday").await.unwrap();
    form.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    browser.arrive("/inbox?done=snoozed").await;
    let listed = browser.find_all(Locator::Css(&format!("tr[data-alert='{}']", snoozed.alert_id))).await.unwrap();
    assert!(listed.is_empty(), "a snoozed alert leaves the inbox");
    let snooze_end = until.and_time(NaiveTime::MIN).and_utc();

    // Stored…
    let sql = format!(
        "SELECT action, actor, note, toUInt32(snoozed_until) AS until FROM {db}.alert_actions
         WHERE alert_id = '{}' AND action = 'snoozed'",
        snoozed.alert_id
    );
    let stored = rows_until(&stack, &sql, |r| !r.is_empty()).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(str_of(&stored[0], "actor"), user);
    assert_eq!(str_of(&stored[0], "note"), "QBR on Monday");
    assert_eq!(stored[0]["until"].to_string().trim_matches('"'), snooze_end.timestamp().to_string());
    // …published on the alerts topic as a lifecycle record, and sent to the webhook as news.
    let alerts_topic = seeded.aggregator.kafka.alerts_topic.clone();
    let records = stack.read_topic(&alerts_topic, Duration::from_secs(3)).await;
    let lifecycle: Vec<&Value> = records
        .iter()
        .map(|(_, v)| v)
        .filter(|v| v["alert_id"] == snoozed.alert_id && v["status"] == "snoozed")
        .collect();
    assert_eq!(lifecycle.len(), 1, "{records:?}");
    assert_eq!(lifecycle[0]["action"]["by"], user.as_str());
    wait_for(|| receiver.statuses(&snoozed.alert_id).len() == 2, Duration::from_secs(20)).await;
    assert_eq!(receiver.statuses(&snoozed.alert_id), ["firing", "snoozed"]);

    // While snoozed nothing of it rings: handed to a colleague a minute later (from the inbox's
    // snoozed list), the `assigned` record is published but held back by the notifier.
    console.clock.set(now + chrono::Duration::minutes(1));
    browser.goto(&console.at("/inbox?scope=all")).await.unwrap();
    browser.find(Locator::Css("a#show-snoozed")).await.expect("a link to the snoozed").click().await.unwrap();
    browser.arrive("/inbox?scope=all&snoozed=1").await;
    let row = browser.soon(&format!("tr[data-alert='{}']", snoozed.alert_id)).await;
    let form = row.find(Locator::Css("form.assign")).await.unwrap();
    let assignee = form.find(Locator::Css("[name=assignee]")).await.unwrap();
    browser
        .execute(&format!("arguments[0].value = '{COLLEAGUE}';"), vec![serde_json::to_value(&assignee).unwrap()])
        .await
        .unwrap();
    form.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    browser.arrive("/inbox?done=assigned").await;
    let held = format!(
        "SELECT outcome FROM {db}.notifications WHERE alert_id = '{}' AND status = 'assigned'",
        snoozed.alert_id
    );
    let ledger = rows_until(&stack, &held, |r| !r.is_empty()).await;
    assert_eq!(ledger.len(), 1, "the notifier saw the assignment");
    assert_eq!(str_of(&ledger[0], "outcome"), "snoozed", "and held it back");
    assert_eq!(receiver.statuses(&snoozed.alert_id), ["firing", "snoozed"], "nothing sent while snoozed");

    // Until the clock passes the snooze's end: the evaluator's pass then announces it
    // (`snooze_ended`), the webhook gets it, and the inbox lists the alert again.
    testkit::console::evaluate_live(&seeded.aggregator, snooze_end + chrono::Duration::minutes(1)).await;
    wait_for(|| receiver.statuses(&snoozed.alert_id).len() == 3, Duration::from_secs(20)).await;
    assert_eq!(receiver.statuses(&snoozed.alert_id), ["firing", "snoozed", "snooze_ended"]);
    let _ = stop_notifier.send(true);
    let _ = notifier.await;
    // A week on, the sign-in has expired (12 hours): sign in again.
    console.clock.set(snooze_end + chrono::Duration::minutes(2));
    browser.goto(&console.at("/inbox?scope=all")).await.unwrap();
    browser.arrive("/login").await;
    sign_in(&browser, &console, &user, PASSWORD).await;
    browser.arrive("/book").await;
    browser.goto(&console.at("/inbox?scope=all")).await.unwrap();
    let back = browser.find_all(Locator::Css(&format!("tr[data-alert='{}']", snoozed.alert_id))).await.unwrap();
    assert_eq!(back.len(), 1, "listed again once the snooze ended");

    // Close the other at-risk alert as churned: an outcome, shown on its account page.
    let row = browser.find(Locator::Css(&format!("tr[data-alert='{}']", closed.alert_id))).await.expect("listed");
    let form = row.find(Locator::Css("form.close")).await.unwrap();
    let reason = form.find(Locator::Css("[name=reason]")).await.unwrap();
    browser.execute("arguments[0].value = 'churned';", vec![serde_json::to_value(&reason).unwrap()]).await.unwrap();
    form.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    browser.arrive("/inbox?done=closed").await;
    let gone = browser.find_all(Locator::Css(&format!("tr[data-alert='{}']", closed.alert_id))).await.unwrap();
    assert!(gone.is_empty(), "a closed alert leaves the inbox");
    let sql = format!(
        "SELECT outcome, source FROM {db}.account_outcomes WHERE account_id = '{}' AND source = 'console'",
        closed.account_id
    );
    let outcomes = rows_until(&stack, &sql, |r| !r.is_empty()).await;
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(str_of(&outcomes[0], "outcome"), "churned");

    browser.goto(&console.at(&format!("/accounts/{}", closed.account_id))).await.unwrap();
    // The CSM's churn (the book may have recorded one of its own for this account too).
    let shown = browser.find_all(Locator::Css("#outcomes li[data-outcome='churned'][data-source='console']")).await;
    assert_eq!(shown.unwrap().len(), 1, "the churn on the account page");
    let line = format!("#alert-timeline li[data-alert='{}'][data-what='closed']", closed.alert_id);
    let closed_line = text(&browser.find(Locator::Css(&line)).await.expect("the closure in the timeline")).await;
    assert!(closed_line.contains(&format!("by {user}")), "{closed_line}");
    shot(&browser, "account-closed").await;
    browser.stop().await;
}

/// A webhook for every record (every status, severity and owner).
fn webhook(url: &str) -> WebhookConfig {
    let hook = serde_json::json!({"name": "csm", "url": url, "format": "json"});
    serde_json::from_value(hook).expect("a webhook")
}

async fn wait_for(done: impl Fn() -> bool, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
#[ignore = "needs the local stack, Chromium and chromedriver: run deploy/local/test.sh"]
async fn an_admin_files_privacy_requests_on_the_privacy_page_and_a_csm_cannot() {
    let (stack, seeded) = seeded().await;
    let person = seeded.book.accounts[0].users[0].id.clone();
    let csm = owner_of(seeded, &seeded.book.accounts[0].id);
    let hash = console::auth::hash_password(PASSWORD).unwrap();
    let admin = format!("[[users]]\nname = \"priya\"\npassword_hash = \"{hash}\"\nrole = \"admin\"\n");
    let console = start_console(seeded.aggregator.clone(), &[&csm], &admin, Clock::system()).await;
    let browser = Browser::start().await;

    // The CSM: no Privacy entry, and the page itself is refused.
    sign_in(&browser, &console, &csm, PASSWORD).await;
    browser.arrive("/book").await;
    let nav = text(&browser.find(Locator::Css("header nav")).await.unwrap()).await;
    assert!(!nav.contains("Privacy"), "{nav}");
    browser.goto(&console.at("/admin/privacy")).await.unwrap();
    assert_eq!(text(&browser.soon("h1").await).await, "Admins only");
    browser.delete_all_cookies().await.unwrap();

    // The admin: suppresses the person through the form; the request is finished and listed.
    sign_in(&browser, &console, "priya", PASSWORD).await;
    browser.arrive("/book").await;
    browser.find(Locator::LinkText("Privacy")).await.expect("Privacy in an admin's navigation").click().await.unwrap();
    browser.arrive("/admin/privacy").await;
    let form = browser.find(Locator::Css("form.privacy")).await.unwrap();
    form.find(Locator::Css("select[name=type] option[value=suppress]")).await.unwrap().click().await.unwrap();
    form.find(Locator::Css("[name=ids]")).await.unwrap().send_keys(&person).await.unwrap();
    form.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    let filed = browser.soon("#filed a").await;
    let id = text(&filed).await;
    let row = browser.find(Locator::Css(&format!("#requests tr[data-id='{id}']"))).await.expect("listed");
    assert!(text(&row).await.contains(&person), "{}", text(&row).await);
    let status = row.find(Locator::Css("[data-status]")).await.unwrap();
    assert_eq!(attr(&status, "data-status").await, "finished", "in force once acknowledged");
    shot(&browser, "privacy").await;

    // Stored with who asked, and published on the suppression list every service follows.
    let db = stack.database();
    let stored = rows_until(
        stack,
        &format!("SELECT requested_by, kind, status FROM {db}.regulations FINAL WHERE regulation_id = '{id}'"),
        |r| !r.is_empty(),
    )
    .await;
    assert_eq!(stored[0]["requested_by"], "priya");
    assert_eq!(stored[0]["status"], "finished");
    let records = stack.read_records(&seeded.aggregator.kafka.suppressions_topic, Duration::from_secs(3)).await;
    let key = format!("user:{person}");
    let record = records.iter().find(|r| r.key == key).expect("the suppression record");
    assert_eq!(
        (record.value["suppressed"].as_bool(), record.value["regulation_id"].as_str()),
        (Some(true), Some(id.as_str()))
    );

    // The request's page: its audit trail.
    filed.click().await.unwrap();
    browser.arrive(&format!("/admin/privacy/{id}")).await;
    let steps: Vec<String> = {
        let mut out = Vec::new();
        for e in browser.find_all(Locator::Css("#audit td.step")).await.unwrap() {
            out.push(text(&e).await);
        }
        out
    };
    assert_eq!(steps, ["filed", "suppressed"]);
    shot(&browser, "privacy-request").await;

    // Lifted again, so the book stays whole for the other tests of this file.
    browser.goto(&console.at("/admin/privacy")).await.unwrap();
    let form = browser.soon("form.privacy").await;
    form.find(Locator::Css("select[name=type] option[value=unsuppress]")).await.unwrap().click().await.unwrap();
    form.find(Locator::Css("[name=ids]")).await.unwrap().send_keys(&person).await.unwrap();
    form.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    browser.soon("#filed").await;
    browser.stop().await;
}
