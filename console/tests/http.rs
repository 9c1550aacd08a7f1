//! The console over HTTP against the real ClickHouse and broker, without a browser: sign-in and
//! its refusals (wrong password, missing CSRF token, the rate limit), the cookie and security
//! headers, escaping of customer-supplied ids and traits, every workflow action stored in
//! `alert_actions` and published on the alerts topic — and refused, naming the field, when the
//! form or the episode's state does not allow it — and the trusted-header mode.
//!
//! Run by `deploy/local/test.sh`; ignored by a bare `cargo test`.

use std::time::Duration;

use console::Clock;
use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Client, StatusCode};
use testkit::console::{start_console_with_admin, RunningConsole, PASSWORD, SESSION_SECRET};
use testkit::Stack;
use warehouse::Warehouse;

const EVIL: &str = "<img src=x onerror=alert(1)>";

/// The console under test and the topic its actions are published on.
struct Console {
    running: RunningConsole,
    alerts_topic: String,
}

fn http() -> Client {
    Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A console on a fresh database with two accounts (one with a hostile id and traits), each
/// with an open firing alert; `extra` is appended to the console's TOML.
async fn start(stack: &Stack, extra: &str) -> Console {
    let alerts_topic = stack.topic("usage-alerts");
    stack.create_topics(&[&alerts_topic], 1).await;
    let mut cfg = testkit::aggregator::config_for(stack, "console");
    cfg.kafka.alerts_topic = alerts_topic.clone();
    Warehouse::new(&cfg.clickhouse).migrate().await.unwrap();
    let db = stack.database();
    let evil = EVIL.replace('\'', "\\'");
    stack
        .execute(&format!(
            "INSERT INTO {db}.account_metrics (account_id, as_of, computed_at, lifecycle_stage, csm_owner, health_score, health_band)
             VALUES ('acme', today(), now(), 'growth', 'dana@vendor.example', 31, 'red'),
                    ('{evil}', today(), now(), 'renewal', 'dana@vendor.example', 55, 'yellow')"
        ))
        .await;
    stack
        .execute(&format!(
            "INSERT INTO {db}.alerts (alert_id, account_id, rule_id, severity, status, fired_at, recorded_at, lifecycle_stage, metrics, csm_owner, reason)
             VALUES ('al-acme', 'acme', 'usage_drop', 'critical', 'firing', now() - 3600, now() - 3600, 'growth', '{{\"active_users_7d\":3}}', 'dana@vendor.example', 'Weekly active users fell 70 %'),
                    ('al-evil', '{evil}', 'usage_drop', 'warning', 'firing', now() - 7200, now() - 7200, 'renewal', '{{}}', 'dana@vendor.example', 'Reason with {evil}')"
        ))
        .await;
    stack
        .execute(&format!(
            "INSERT INTO {db}.accounts (account_id, traits, updated_at) VALUES ('{evil}', '{{\"plan\":\"<script>alert(2)</script>\"}}', now())"
        ))
        .await;
    let users = ["dana@vendor.example", "sam@vendor.example"];
    let running = start_console_with_admin(cfg.build_and_validate().unwrap(), &users, extra, Clock::system()).await;
    Console { running, alerts_topic }
}

fn cookies(headers: &HeaderMap) -> Vec<String> {
    headers.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect()
}

/// `name=value` of the first Set-Cookie named `name`.
fn cookie_pair(headers: &HeaderMap, name: &str) -> String {
    let c = cookies(headers).into_iter().find(|c| c.starts_with(&format!("{name}="))).unwrap();
    c.split(';').next().unwrap().to_owned()
}

fn field(html: &str, name: &str) -> String {
    let at = html.find(&format!("name=\"{name}\" value=\"")).unwrap_or_else(|| panic!("no {name} in {html}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// The login form's cookie and CSRF token.
async fn login_form(c: &Console) -> (String, String) {
    let res = http().get(format!("{}/login", c.running.url)).send().await.unwrap();
    let jar = cookie_pair(res.headers(), "uptake_login");
    (jar, field(&res.text().await.unwrap(), "csrf"))
}

async fn sign_in(c: &Console, user: &str, password: &str) -> reqwest::Response {
    let (jar, csrf) = login_form(c).await;
    http()
        .post(format!("{}/login", c.running.url))
        .header(COOKIE, jar)
        .form(&[("username", user), ("password", password), ("csrf", &csrf), ("next", "/inbox")])
        .send()
        .await
        .unwrap()
}

async fn session(c: &Console) -> String {
    let res = sign_in(c, "dana@vendor.example", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    cookie_pair(res.headers(), "uptake_session")
}

async fn get(c: &Console, cookie: &str, path: &str) -> (StatusCode, String) {
    let res = http().get(format!("{}{path}", c.running.url)).header(COOKIE, cookie).send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn sign_in_is_refused_without_the_password_the_token_or_beyond_the_rate_limit() {
    let stack = Stack::from_env("console_signin");
    let c = start(&stack, "[auth]\nlogin_attempts = 3").await;

    let res = http().get(format!("{}/book?scope=all", c.running.url)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "signed out: to the sign-in page");
    assert!(res.headers()[LOCATION].to_str().unwrap().starts_with("/login?next=%2Fbook"));

    let ok = sign_in(&c, "dana@vendor.example", PASSWORD).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(ok.headers()[LOCATION], "/inbox");
    let set = cookies(ok.headers()).into_iter().find(|c| c.starts_with("uptake_session=")).unwrap();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax"), "{set}");
    let csp = ok.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");

    let wrong = sign_in(&c, "sam@vendor.example", "not it").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.text().await.unwrap().contains("Wrong user name or password"));
    let (jar, _) = login_form(&c).await;
    let forged = http()
        .post(format!("{}/login", c.running.url))
        .header(COOKIE, jar)
        .form(&[("username", "sam@vendor.example"), ("password", PASSWORD), ("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN, "a sign-in post without its token");
    assert!(cookies(forged.headers()).iter().all(|c| !c.starts_with("uptake_session=")));

    for _ in 0..2 {
        assert_eq!(sign_in(&c, "sam@vendor.example", "guess").await.status(), StatusCode::UNAUTHORIZED);
    }
    let limited = sign_in(&c, "sam@vendor.example", PASSWORD).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS, "3 failures: even the right password waits");
    assert!(cookies(limited.headers()).iter().all(|c| !c.starts_with("uptake_session=")));
    // A validly signed session of someone who is not (or no longer) a user is no session.
    let signer = console::auth::Signer::new(SESSION_SECRET.as_bytes());
    let ghost = format!("uptake_session={}", signer.issue("mallory@vendor.example", i64::MAX / 2));
    let res = http().get(format!("{}/book", c.running.url)).header(COOKIE, ghost).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "a removed user is signed out");
    let other = sign_in(&c, "dana@vendor.example", PASSWORD).await;
    assert_eq!(other.status(), StatusCode::SEE_OTHER, "sam's lockout is sam's: the shared address still signs dana in");

    // The operator sees it on the admin listener, never on the CSMs' port: 2 sign-ins, 3 wrong
    // passwords, 1 blocked (the forged post was refused before any password was checked).
    let admin = c.running.admin_url.as_deref().unwrap();
    let metrics = http().get(format!("{admin}/metrics")).send().await.unwrap().text().await.unwrap();
    for (outcome, n) in [("ok", 2), ("refused", 3), ("blocked", 1)] {
        let line = format!("uptake_console_sign_ins_total{{outcome=\"{outcome}\"}} {n}");
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
    let public = http().get(format!("{}/metrics", c.running.url)).send().await.unwrap();
    assert_ne!(public.status(), StatusCode::OK, "no metrics on the CSMs' port");
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn customer_supplied_ids_and_traits_are_escaped_on_every_page() {
    let stack = Stack::from_env("console_escape");
    let c = start(&stack, "").await;
    let s = session(&c).await;
    let evil_href = console::pages::account_href(EVIL);
    for path in ["/book?scope=all", "/inbox?scope=all", evil_href.as_str()] {
        let (status, html) = get(&c, &s, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {html}");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"), "{path} shows the id, escaped");
        assert!(!html.contains(EVIL), "{path} contains the raw id");
        assert!(!html.contains("<script>alert(2)"), "{path} contains a raw trait");
    }
    let (_, account) = get(&c, &s, &evil_href).await;
    assert!(account.contains("&lt;script&gt;alert(2)&lt;/script&gt;"), "the trait is shown, escaped");
}

/// The inbox is filtered and cut in SQL: a queue longer than a page shows its most severe head
/// and counts the rest; "mine" keeps the CSM's own episodes (owner or assignee, any case).
#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn the_inbox_shows_the_head_of_a_long_queue_and_counts_the_rest() {
    let stack = Stack::from_env("console_inbox");
    let c = start(&stack, "").await;
    let db = stack.database();
    // 203 more open episodes, all another CSM's, all less severe than dana's critical one.
    stack
        .execute(&format!(
            "INSERT INTO {db}.alerts (alert_id, account_id, rule_id, severity, status, fired_at, recorded_at, lifecycle_stage, metrics, csm_owner, reason)
             SELECT concat('bulk-', toString(number)), 'bulk', 'usage_drop', 'info', 'firing', now() - 60, now() - 60, 'growth', '{{}}', 'SAM@vendor.example', 'x'
             FROM system.numbers LIMIT 203"
        ))
        .await;
    let s = session(&c).await;
    let (status, all) = get(&c, &s, "/inbox?scope=all").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all.matches("<tr data-alert=").count(), 200, "one page of the 205 open episodes");
    assert!(all.contains("<strong>205</strong> open") && all.contains("showing the first 200"), "{all}");
    let first = all.find("data-alert=\"al-acme\"").expect("the critical episode is listed");
    assert!(first < all.find("data-alert=\"bulk-").unwrap(), "most severe first");

    let (_, mine) = get(&c, &s, "/inbox?scope=mine").await;
    assert_eq!(mine.matches("<tr data-alert=").count(), 2, "dana's two episodes only");
    assert!(mine.contains("<strong>2</strong> open") && !mine.contains("bulk-"), "{mine}");
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn every_action_is_stored_and_published_and_bad_ones_are_refused_by_field() {
    let stack = Stack::from_env("console_actions");
    let c = start(&stack, "").await;
    let s = session(&c).await;
    let (_, inbox) = get(&c, &s, "/inbox?scope=all").await;
    let csrf = field(&inbox, "csrf");
    let post = |alert: &'static str, action: &'static str, form: Vec<(&'static str, String)>| {
        let (url, s) = (c.running.url.clone(), s.clone());
        async move {
            let res = http()
                .post(format!("{url}/alerts/{alert}/{action}"))
                .header(COOKIE, s)
                .form(&form)
                .send()
                .await
                .unwrap();
            (res.status(), res.text().await.unwrap())
        }
    };
    let until = (chrono::Utc::now() + chrono::Duration::days(5)).date_naive().to_string();
    let action_id = "0192f7a0-0000-7000-8000-00000000abcd".to_string();
    let snooze = vec![
        ("csrf", csrf.clone()),
        ("action_id", action_id.clone()),
        ("until", until.clone()),
        ("note", "QBR on Monday".into()),
    ];
    assert_eq!(post("al-acme", "snooze", vec![("until", until.clone())]).await.0, StatusCode::FORBIDDEN, "no token");
    assert_eq!(post("al-acme", "snooze", snooze.clone()).await.0, StatusCode::SEE_OTHER);
    assert_eq!(post("al-acme", "snooze", snooze).await.0, StatusCode::SEE_OTHER, "a re-post of the same form");
    let (status, page) = post("al-acme", "snooze", vec![("csrf", csrf.clone()), ("until", "2020-01-01".into())]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(page.contains("until: must be a day after today"), "{page}");
    let (status, page) = post("al-acme", "assign", vec![("csrf", csrf.clone()), ("assignee", "mallory".into())]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(page.contains("assignee: is not a console user"), "{page}");
    let assign = vec![("csrf", csrf.clone()), ("assignee", "sam@vendor.example".into())];
    assert_eq!(post("al-acme", "assign", assign).await.0, StatusCode::SEE_OTHER);
    let close = vec![("csrf", csrf.clone()), ("reason", "churned".into()), ("note", "moved to a rival".into())];
    assert_eq!(post("al-evil", "close", close.clone()).await.0, StatusCode::SEE_OTHER);
    let (status, page) = post("al-evil", "ack", vec![("csrf", csrf.clone())]).await;
    assert_eq!((status, page.contains("closed already")), (StatusCode::CONFLICT, true), "{page}");
    assert_eq!(post("al-nope", "ack", vec![("csrf", csrf)]).await.0, StatusCode::NOT_FOUND);

    let db = stack.database();
    let rows = stack
        .query(&format!("SELECT alert_id, action, actor, note, assignee, close_reason, toDate(snoozed_until) AS until FROM {db}.alert_actions ORDER BY at_ms"))
        .await;
    let got: Vec<(String, String)> =
        rows.iter().map(|r| (r["alert_id"].as_str().unwrap().into(), r["action"].as_str().unwrap().into())).collect();
    let want = [("al-acme", "snoozed"), ("al-acme", "assigned"), ("al-evil", "closed")];
    assert_eq!(got, want.map(|(a, b)| (a.to_string(), b.to_string())), "one row per action, the re-post stored once");
    assert_eq!(rows[0]["until"], until.as_str());
    assert_eq!(
        (rows[0]["note"].as_str(), rows[0]["actor"].as_str()),
        (Some("QBR on Monday"), Some("dana@vendor.example"))
    );
    assert_eq!(rows[1]["assignee"], "sam@vendor.example");
    let outcomes = stack.query(&format!("SELECT account_id, outcome, source FROM {db}.account_outcomes")).await;
    assert_eq!(outcomes.len(), 1);
    assert_eq!((outcomes[0]["account_id"].as_str(), outcomes[0]["outcome"].as_str()), (Some(EVIL), Some("churned")));

    let records = stack.read_records(&c.alerts_topic, Duration::from_secs(5)).await;
    let statuses: Vec<String> = records
        .iter()
        .map(|r| {
            let v = &r.value;
            format!(
                "{}:{}:{}",
                v["alert_id"].as_str().unwrap(),
                v["status"].as_str().unwrap(),
                v["action"]["action_id"].as_str().unwrap_or("")
            )
        })
        .collect();
    let snoozed = format!("al-acme:snoozed:{action_id}");
    assert_eq!(
        statuses.iter().filter(|s| **s == snoozed).count(),
        2,
        "the re-post publishes the same record: {statuses:?}"
    );
    assert_eq!(statuses.len(), 4, "{statuses:?}");
    assert!(statuses[3].starts_with("al-evil:closed:"), "{statuses:?}");
    let closed = &records[3].value;
    assert_eq!(closed["action"]["close_reason"], "churned");
    assert_eq!(closed["account_id"], EVIL);

    let (_, inbox) = get(&c, &s, "/inbox?scope=all").await;
    assert!(!inbox.contains("data-alert=\"al-evil\""), "closed: gone from the inbox");
    assert!(!inbox.contains("data-alert=\"al-acme\""), "snoozed: hidden from the inbox");
    assert!(inbox.contains("show 1 snoozed"));
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn a_trusted_header_signs_in_only_when_configured() {
    let stack = Stack::from_env("console_header");
    let plain = start(&stack, "").await;
    let res = http()
        .get(format!("{}/book", plain.running.url))
        .header("x-forwarded-email", "dana@vendor.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "off by default: the header is ignored");

    let stack = Stack::from_env("console_header2");
    let proxied = start(&stack, "[auth]\ntrusted_header = \"X-Forwarded-Email\"").await;
    let res = http()
        .get(format!("{}/book", proxied.running.url))
        .header("x-forwarded-email", "dana@vendor.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains("<span id=\"whoami\">dana@vendor.example</span>"));
    assert!(html.contains("data-account=\"acme\""), "dana's book");
    let res = http()
        .get(format!("{}/book", proxied.running.url))
        .header("x-forwarded-email", "not a name")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "an invalid user name is not signed in");
}
