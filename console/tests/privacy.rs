//! Privacy requests end to end on the real broker and ClickHouse: ingest → aggregator → a
//! request through the console's API → the deletion worker. A person with events, identify
//! traits, member rows, a dead letter, a CSM note and a metrics row naming them is deleted;
//! then no table holds a row naming them — the tables are found by their columns, so a table
//! added later is checked too — while the account is still measured and the audit trail says
//! who asked and what was done. The aggregator is stopped in the middle of the deletion and a
//! new one finishes it. A suppression filed through the API keeps a person's new events out,
//! its lifting lets them in again. A CSM (no admin role) and a caller without a token are
//! refused.
//!
//! Run by `deploy/local/test.sh`; ignored by a bare `cargo test`.

use std::time::Duration;

use aggregator::config::RetentionMode;
use console::Clock;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use testkit::console::{start_console, PASSWORD, SESSION_SECRET};
use testkit::Stack;

const KEY: &str = "privacy-write-key-0123456789abcdefgh";
const TOKEN: &str = "privacy-test-api-token-0123456789abcdef";
/// Everything that names Ann: her id, and the email and name of her identify call.
const ANN: [&str; 3] = ["ann", "ann@example.com", "Ann Example"];

fn ago(days: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(days)).to_rfc3339()
}

/// Ann (the heaviest user), Bob and Cleo of account acme over the last 12 days, Ann's traits,
/// and one event of Ann's that ingest refuses (a dead letter).
fn history() -> Value {
    let mut batch = vec![
        json!({"kind": "account", "account_id": "acme", "timestamp": ago(20), "traits": {"seats": 10, "csm": "dana"}}),
        json!({"kind": "user", "account_id": "acme", "user_id": "ann", "timestamp": ago(20),
               "traits": {"email": "ann@example.com", "name": "Ann Example", "role": "admin"}}),
        json!({"kind": "user", "account_id": "acme", "user_id": "bob", "timestamp": ago(20),
               "traits": {"email": "bob@example.com", "name": "Bob Other"}}),
    ];
    for day in 1..=12 {
        for (user, uses) in [("ann", 5), ("bob", 2), ("cleo", 1)] {
            batch.push(json!({"kind": "login", "account_id": "acme", "user_id": user, "timestamp": ago(day)}));
            batch.push(json!({"kind": "feature_used", "account_id": "acme", "user_id": user, "timestamp": ago(day),
                              "feature": "reports", "count": uses, "properties": {"shared_with": "ann@example.com"}}));
        }
    }
    json!({ "batch": batch })
}

async fn post_events(http: &Client, url: &str, body: &Value) -> Value {
    let r = http.post(format!("{url}/v1/events")).basic_auth(KEY, Some("")).json(body).send().await.unwrap();
    assert_eq!(r.status(), 200, "events accepted");
    r.json().await.unwrap()
}

/// Rows naming Ann per (table, column), over every String column of every MergeTree table of
/// the database (the request ledger excepted): found by columns, not by a list of ours.
async fn rows_naming_ann(stack: &Stack) -> Vec<(String, u64)> {
    let db = stack.database();
    let columns = stack
        .query(&format!(
            "SELECT table, name FROM system.columns WHERE database = '{db}'
               AND type IN ('String', 'Nullable(String)')
               AND table IN (SELECT name FROM system.tables WHERE database = '{db}' AND engine LIKE '%MergeTree')
               AND table NOT IN ('regulations', 'regulation_audit')"
        ))
        .await;
    let ids = ANN.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
    let tokens = ANN.iter().map(|t| t.replace('.', "\\\\.")).collect::<Vec<_>>().join("|");
    let mut found = Vec::new();
    for c in columns {
        let (table, column) = (c["table"].as_str().unwrap(), c["name"].as_str().unwrap());
        let sql = format!(
            "SELECT count() AS n FROM {db}.{table} WHERE {column} IN ({ids})
               OR match({column}, '(^|[^A-Za-z0-9_.@+-])({tokens})([^A-Za-z0-9_.@+-]|$)')"
        );
        let n = stack.query(&sql).await[0]["n"].as_str().map_or(0, |n| n.parse().unwrap());
        if n > 0 {
            found.push((format!("{table}.{column}"), n));
        }
    }
    found
}

fn api(http: &Client, url: &str) -> reqwest::RequestBuilder {
    http.get(url).bearer_auth(TOKEN)
}

/// A session cookie for `user`, signed as the console signs them.
fn session(user: &str) -> String {
    let expires = chrono::Utc::now().timestamp() + 3600;
    format!(
        "{}={}",
        console::auth::SESSION_COOKIE,
        console::auth::Signer::new(SESSION_SECRET.as_bytes()).issue(user, expires)
    )
}

async fn status_of(http: &Client, console: &str, id: &str) -> Value {
    api(http, &format!("{console}/api/v1/regulations/{id}")).send().await.unwrap().json().await.unwrap()
}

async fn wait_for_status(http: &Client, console: &str, id: &str, want: &str, timeout: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let v = status_of(http, console, id).await;
        if v["status"] == want || tokio::time::Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn a_deleted_person_is_gone_from_every_table_and_their_account_is_still_measured() {
    let stack = Stack::from_env("privacy");
    let mut raw = testkit::aggregator::config(&stack, "privacy", 2).await;
    raw.privacy.interval_ms = 200;
    raw.privacy.grace_ms = 3_000;
    raw.evaluation.interval_ms = 500;
    raw.evaluation.settle_ms = 0;
    raw.retention.mode = RetentionMode::Off;
    let cfg = raw.build_and_validate().unwrap();
    let first = testkit::aggregator::start(cfg.clone()).await;

    let mut icfg = testkit::ingest::config_for(&stack.kafka, KEY, "app");
    (icfg.kafka.topic, icfg.kafka.dlq_topic) = (cfg.kafka.events_topic.clone(), cfg.kafka.dlq_topic.clone());
    icfg.kafka.suppressions_topic = cfg.kafka.suppressions_topic.clone();
    let ingest = testkit::ingest::serve(icfg).await;
    let http = Client::new();
    let answer = post_events(&http, &ingest.url, &history()).await;
    assert_eq!(answer["accepted"], 75);
    // A dead letter of Ann's: refused by ingest, kept on the dead-letter topic (bounded by the
    // topic's retention, docs/privacy.md), never in ClickHouse.
    let bad = json!({"batch": [{"kind": "survey", "account_id": "acme", "user_id": "ann", "nps": 99}]});
    let r = http.post(format!("{}/v1/events", ingest.url)).basic_auth(KEY, Some("")).json(&bad).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let dead = stack.read_records(&cfg.kafka.dlq_topic, Duration::from_secs(3)).await;
    assert!(dead.iter().any(|d| d.value.to_string().contains("\"ann\"")), "Ann's dead letter: {dead:?}");

    let db = stack.database();
    let stored =
        stack.wait_for_count(&format!("SELECT count() AS n FROM {db}.events"), 75, Duration::from_secs(30)).await;
    assert_eq!(stored, 75, "every accepted event stored");
    // A CSM's note that names her, and a metrics row computed from her activity.
    stack
        .execute(&format!(
            "INSERT INTO {db}.alert_actions (action_id, alert_id, account_id, rule_id, action, actor, at, at_ms, note, recorded_at)
             VALUES ('act-1', 'al-1', 'acme', 'usage_drop', 'acknowledged', 'dana', now(), 0, 'Called ann@example.com, she is happy', now())"
        ))
        .await;
    let n = stack
        .wait_for_count(
            &format!("SELECT count() AS n FROM {db}.account_metrics WHERE account_id = 'acme'"),
            1,
            Duration::from_secs(20),
        )
        .await;
    assert!(n >= 1, "a metrics row for acme");
    let before = rows_naming_ann(&stack).await;
    for place in [
        "events.user_id",
        "events.properties",
        "users.user_id",
        "users.traits",
        "account_members.member",
        "alert_actions.note",
    ] {
        assert!(before.iter().any(|(p, _)| p == place), "Ann is in {place} before: {before:?}");
    }

    // The console: an admin files through the API with a token; a CSM and a token-less caller
    // are refused.
    let hash = console::auth::hash_password(PASSWORD).unwrap();
    let extra = format!(
        "[[api_tokens]]\nname = \"privacy-bot\"\nsha256 = \"{}\"\n[[users]]\nname = \"root\"\npassword_hash = \"{hash}\"\nrole = \"admin\"\n",
        console::auth::token_digest(TOKEN)
    );
    let console = start_console(cfg.clone(), &["dana"], &extra, Clock::system()).await;
    let request = json!({"type": "delete", "subject_type": "user", "ids": ["ann"]});
    let r = http.post(console.at("/api/v1/regulations")).json(&request).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = http
        .post(console.at("/api/v1/regulations"))
        .bearer_auth("a-write-key-is-not-a-token")
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let bad = json!({"type": "erase", "subject_type": "user", "ids": ["ann"]});
    let r = http.post(console.at("/api/v1/regulations")).bearer_auth(TOKEN).json(&bad).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["field"], "type");
    let r = http.post(console.at("/api/v1/regulations")).bearer_auth(TOKEN).json(&request).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let filed: Value = r.json().await.unwrap();
    let id = filed["id"].as_str().unwrap().to_owned();
    assert_eq!((filed["status"].as_str(), filed["requested_by"].as_str()), (Some("received"), Some("privacy-bot")));

    // Taken by the first aggregator, which stops during the grace period; a second one
    // finishes the deletion after the restart.
    let running = wait_for_status(&http, &console.url, &id, "running", Duration::from_secs(10)).await;
    assert_eq!(running["status"], "running", "{running}");
    first.stop().await.unwrap();
    assert_eq!(status_of(&http, &console.url, &id).await["status"], "running", "not finished before the restart");
    let second = testkit::aggregator::start(cfg.clone()).await;
    // Meanwhile the admin follows it on the privacy page; a CSM may not see it.
    let page = |user: &str| http.get(console.at("/admin/privacy")).header("Cookie", session(user)).send();
    let r = page("root").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains(&id), "the admin's list shows the request");
    let r = page("dana").await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(!r.text().await.unwrap().contains(&id));
    let done = wait_for_status(&http, &console.url, &id, "finished", Duration::from_secs(60)).await;
    assert_eq!(done["status"], "finished", "{done}");

    let after = rows_naming_ann(&stack).await;
    assert!(after.is_empty(), "rows still naming Ann: {after:?}");
    let steps: Vec<&str> = done["audit"].as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap()).collect();
    for step in ["filed", "running", "deleted", "verified"] {
        assert!(steps.contains(&step), "audit step {step} in {steps:?}");
    }
    assert_eq!(done["audit"][0]["actor"], "privacy-bot");
    let deleted = done["audit"].as_array().unwrap().iter().find(|a| a["action"] == "deleted").unwrap();
    let counts: Value = serde_json::from_str(deleted["detail"].as_str().unwrap()).unwrap();
    // Her 24 events and her identify call deleted; the 24 of the others that named her in their
    // properties redacted.
    assert_eq!(counts["events"], 49, "{counts}");
    assert_eq!(counts["users"], 1, "{counts}");

    // The others stay, and the account is still measured: a pass after the deletion computes
    // acme from Bob's and Cleo's activity.
    let others = stack.query(&format!("SELECT count() AS n FROM {db}.events WHERE user_id IN ('bob', 'cleo')")).await;
    assert_eq!(others[0]["n"], "49", "their 48 events and Bob's identify call");
    let since = chrono::Utc::now().timestamp();
    let n = stack
        .wait_for_count(
            &format!("SELECT count() AS n FROM {db}.account_metrics WHERE account_id = 'acme' AND computed_at >= {since} AND active_users_7d = 2"),
            1,
            Duration::from_secs(20),
        )
        .await;
    assert!(n >= 1, "acme measured after the deletion, from Bob and Cleo");

    // Suppression: Dave's new events are answered as accepted and never stored; lifted, they are.
    let suppress = json!({"type": "suppress", "subject_type": "user", "ids": ["dave"]});
    let r = http.post(console.at("/api/v1/regulations")).bearer_auth(TOKEN).json(&suppress).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let s: Value = r.json().await.unwrap();
    assert_eq!(s["status"], "finished", "a suppression is in force when it is acknowledged: {s}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let now = chrono::Utc::now().to_rfc3339();
    let mixed = json!({"batch": [
        {"kind": "login", "account_id": "acme", "user_id": "dave", "message_id": "dave-1", "timestamp": now},
        {"kind": "login", "account_id": "acme", "user_id": "bob", "message_id": "bob-late", "timestamp": now}
    ]});
    assert_eq!(post_events(&http, &ingest.url, &mixed).await["accepted"], 2);
    let n = stack
        .wait_for_count(
            &format!("SELECT count() AS n FROM {db}.events WHERE message_id = 'bob-late'"),
            1,
            Duration::from_secs(20),
        )
        .await;
    assert!(n >= 1, "Bob's late event stored");
    let dave = stack.query(&format!("SELECT count() AS n FROM {db}.events WHERE user_id = 'dave'")).await;
    assert_eq!(dave[0]["n"], "0", "a suppressed person's event is not stored");
    let lift = json!({"type": "unsuppress", "subject_type": "user", "ids": ["dave"]});
    let r = http.post(console.at("/api/v1/regulations")).bearer_auth(TOKEN).json(&lift).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again = json!({"batch": [{"kind": "login", "account_id": "acme", "user_id": "dave", "message_id": "dave-2", "timestamp": now}]});
    post_events(&http, &ingest.url, &again).await;
    let n = stack
        .wait_for_count(
            &format!("SELECT count() AS n FROM {db}.events WHERE message_id = 'dave-2'"),
            1,
            Duration::from_secs(20),
        )
        .await;
    assert!(n >= 1, "Dave's event stored once lifted");

    // The list shows all three, newest first; the export of Bob holds his rows.
    let list: Value = api(&http, &console.at("/api/v1/regulations")).send().await.unwrap().json().await.unwrap();
    let kinds: Vec<&str> =
        list["regulations"].as_array().unwrap().iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["unsuppress", "suppress", "delete"], "{list}");
    let export: Value =
        api(&http, &console.at("/api/v1/exports?subject_type=user&id=bob")).send().await.unwrap().json().await.unwrap();
    assert_eq!(export["tables"]["events"].as_array().map(Vec::len), Some(26), "Bob's events: {}", export["tables"]);
    assert_eq!(export["tables"]["users"][0]["user_id"], "bob");

    // The admin's CLI (`console privacy`) over the same API: the request, and a file request.
    // A child process on a blocking thread: the console answers it from this test's runtime.
    let cli = |args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_console"));
        command.args(["privacy", "--url", &console.url]).args(args).env("UPTAKE_API_TOKEN", TOKEN);
        async move {
            let out =
                tokio::task::spawn_blocking(move || command.output()).await.unwrap().expect("console privacy runs");
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            (out.status.success(), text(&out.stdout), text(&out.stderr))
        }
    };
    let (ok, shown, err) = cli(&["show", &id]).await;
    assert!(ok, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&shown).unwrap()["status"], "finished");
    let (ok, filed, err) = cli(&["file", "--type", "suppress", "--account", "globex"]).await;
    assert!(ok, "{err}");
    let filed: Value = serde_json::from_str(&filed).unwrap();
    assert_eq!((filed["subject_type"].as_str(), filed["status"].as_str()), (Some("account"), Some("finished")));
    let (ok, _, err) = cli(&["file", "--type", "erase", "--user", "x"]).await;
    assert!(!ok && err.contains("\"field\": \"type\""), "a refused request fails the command with its reason: {err}");
    second.stop().await.unwrap();
}
