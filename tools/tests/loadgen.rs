//! The load generator against the real ingest and broker: a small book sent through the native
//! API and through the Segment API arrives whole — every generated event is on the topic, with
//! the kind and account the generator meant, and the count loadgen reports is what arrived.
//!
//! Run by `deploy/local/test.sh`; ignored by a bare `cargo test`.

use std::collections::BTreeMap;
use std::time::Duration;

use ingest::WriteKey;
use ingest::{App, RawIngestConfig};
use schemas::event::Event;
use testkit::Stack;
use tools::loadgen::{self, send::Sender, Book, Format};

const KEY: &str = "loadgen-test-key-0123456789abcdef0";

/// (kind, account) → events, of what the generator made or what arrived.
fn tally<'a>(items: impl Iterator<Item = (&'a str, &'a str)>) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for (kind, account) in items {
        *out.entry((kind.to_owned(), account.to_owned())).or_default() += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn a_book_sent_in_either_format_arrives_whole() {
    let stack = Stack::from_env("loadgen");
    let book = Book::new(6, 4, 5, loadgen::today());
    let generated: Vec<serde_json::Value> = book.days().flat_map(|d| loadgen::day_events(&book, d)).collect();
    let want = tally(generated.iter().map(|e| (e["kind"].as_str().unwrap(), e["account_id"].as_str().unwrap())));

    for format in [Format::Native, Format::Segment] {
        let (topic, dlq) = (stack.topic(&format!("events-{format:?}")), stack.topic(&format!("dlq-{format:?}")));
        stack.create_topics(&[&topic, &dlq], 2).await;
        let mut cfg = RawIngestConfig::default();
        cfg.kafka.brokers = stack.kafka.clone();
        (cfg.kafka.topic, cfg.kafka.dlq_topic) = (topic.clone(), dlq);
        cfg.write_keys = vec![WriteKey { key: KEY.into(), source: "loadgen-test".into() }];
        cfg.limits.rate_per_sec = 0;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(ingest::serve(
            listener,
            App::new(cfg.build_and_validate().unwrap()).unwrap(),
            std::future::pending(),
        ));

        let sender = Sender::new(&url, KEY, format);
        let accepted = loadgen::history(&book, &sender, 100, 4).await.unwrap();
        assert_eq!(accepted as usize, generated.len(), "{format:?}: loadgen's count");

        let arrived: Vec<Event> = stack
            .read_topic(&topic, Duration::from_secs(5))
            .await
            .into_iter()
            .map(|(_, v)| serde_json::from_value(v).expect("canonical event"))
            .collect();
        let got = tally(arrived.iter().map(|e| (e.kind.as_str(), e.account_id.as_str())));
        assert_eq!(got, want, "{format:?}: every event, with its kind and account");
    }
}
