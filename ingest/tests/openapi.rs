//! The OpenAPI document in `schemas/openapi/ingest.json` describes exactly the routes the router
//! serves: no undocumented route, no documented route that is missing.

use std::collections::BTreeSet;

use ingest::WriteKey;
use ingest::ROUTES;
use ingest::{App, RawIngestConfig};
use serde_json::Value;

fn documented() -> BTreeSet<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/openapi/ingest.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(op["responses"].is_object(), "{method} {path} documents no responses");
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

#[test]
fn the_document_lists_exactly_the_routes_table() {
    let routes: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented(), routes);
}

#[tokio::test]
async fn every_route_in_the_table_is_served() {
    // No broker is needed to route: write routes answer 401 without a key, before any Kafka I/O.
    let mut cfg = RawIngestConfig::default();
    cfg.kafka.brokers = "127.0.0.1:1".into();
    cfg.write_keys = vec![WriteKey { key: "openapi-test-key-0123456789abcdef0".into(), source: "t".into() }];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(ingest::serve(listener, App::new(cfg.build_and_validate().unwrap()).unwrap(), std::future::pending()));
    let http = reqwest::Client::new();
    for (method, path) in ROUTES {
        let status = match *method {
            "GET" => http.get(format!("{base}{path}")).send().await.unwrap().status(),
            "POST" => http.post(format!("{base}{path}")).body("{}").send().await.unwrap().status(),
            other => panic!("unexpected method {other}"),
        };
        assert!(status != 404 && status != 405, "{method} {path} is not served: {status}");
        if *method == "POST" {
            assert_eq!(status, 401, "{path} without a write key");
        }
    }
    let unknown = http.post(format!("{base}/v1/nothing")).send().await.unwrap().status();
    assert_eq!(unknown, 404);
}
