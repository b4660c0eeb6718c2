//! `GET /metrics` after traffic: the cache's hits, misses and loads match the
//! requests sent, the HTTP figures carry route and status, and every metric
//! the dashboard (`dashboard.json`) charts is there. One test: the metrics
//! recorder is one per process, shared by every gateway in it.

// The helpers' unwraps are assertions: a failure there is the test's failure.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use cache_core::Cache;
use cache_core::testing::{Calls, Fault, Faults};
use cache_testkit::RedisServer;
use gateway::{Config, Gateway, PriceTable};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A gateway on `cache` (memory-backed when given) or the Redis `settings` name.
async fn start(cache: Option<Cache>, settings: &[(&str, &str)]) -> String {
    let mut settings: HashMap<String, String> = settings
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    settings.insert("GATEWAY_ADDR".into(), "127.0.0.1:0".into());
    settings.insert("GATEWAY_ADMIN_TOKEN".into(), "admin-secret".into());
    let config = Config::from_lookup(|name| settings.get(name).cloned()).unwrap();
    let service = match cache {
        Some(cache) => {
            let table = PriceTable::open(&config.database_url).await.unwrap();
            Gateway::new(cache, table, &config).unwrap()
        }
        None => Gateway::start(&config).await.unwrap(),
    };
    let listener = tokio::net::TcpListener::bind(config.addr).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(gateway::serve(service, listener, std::future::pending()));
    base
}

async fn get(base: &str, path: &str) -> (StatusCode, String) {
    let response = reqwest::get(format!("{base}{path}")).await.unwrap();
    (response.status(), response.text().await.unwrap())
}

/// The value of the series `name{labels}` (labels in any order), 0 if absent.
fn value(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| {
            series.split('{').next() == Some(name)
                && labels
                    .iter()
                    .all(|(label, value)| series.contains(&format!("{label}=\"{value}\"")))
        })
        .map(|(_, value)| value.parse::<f64>().unwrap())
        .sum()
}

/// Polls `/metrics` until `ready` holds (up to 10 s); returns the text.
async fn metrics_once(base: &str, ready: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        let (status, text) = get(base, "/metrics").await;
        assert_eq!(status, StatusCode::OK, "{text}");
        if ready(&text) || started.elapsed() > Duration::from_secs(10) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The metric families the exposition declares (`# TYPE name kind`).
fn families(metrics: &str) -> HashMap<String, String> {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
        .collect()
}

/// Every `cache_*` and `gateway_*` name in the dashboard's expressions.
fn dashboard_names() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut names = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let words = expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
            names.extend(
                words
                    .filter(|word| word.starts_with("cache_") || word.starts_with("gateway_"))
                    .map(str::to_owned),
            );
        }
    }
    names
}

/// The labels of the gateway's price keyspace.
const PRICE: [(&str, &str); 2] = [("namespace", "gateway"), ("keyspace", "price")];

/// After 3 reads of gpt-4 and 2 of an unknown model on `base`: the cache's
/// figures and the HTTP requests by route and status.
async fn counts_match_the_price_traffic(base: &str) {
    let text = metrics_once(base, |_| true).await;
    // gpt-4: a miss and a load, then two hits (the second read fills the
    // local tier, the third is answered there); the unknown model: a miss,
    // a load, then its cached absence.
    let counted = [
        ("cache_misses_total", 2.0),
        ("cache_loads_total", 2.0),
        ("cache_hits_total", 2.0),
        ("cache_local_hits_total", 1.0),
        ("cache_negative_hits_total", 1.0),
    ];
    for (name, expected) in counted {
        assert_eq!(value(&text, name, &PRICE), expected, "{name} in\n{text}");
    }
    let route = ("route", "/v1/prices/{model}");
    let ok = [route, ("method", "GET"), ("status", "200")];
    let missing = [route, ("method", "GET"), ("status", "404")];
    for (labels, expected) in [(&ok, 3.0), (&missing, 2.0)] {
        let requests = value(&text, "gateway_http_requests_total", labels);
        assert_eq!(requests, expected, "{labels:?} in\n{text}");
    }
    let timed = "gateway_http_request_duration_seconds_count";
    assert_eq!(value(&text, timed, &ok), 3.0, "{text}");
}

/// Every name the dashboard charts is in `text` (from /metrics), as the
/// right kind.
fn dashboard_charts_only_exported_names(text: &str) {
    let exported = families(text);
    let names = dashboard_names();
    assert!(names.len() >= 15, "{names:?}");
    for name in names {
        let (family, kind) = match name.strip_suffix("_bucket") {
            Some(histogram) => (histogram, "histogram"),
            None => (name.as_str(), "counter"),
        };
        assert_eq!(
            exported.get(family).map(String::as_str),
            Some(kind),
            "{name} in\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_match_the_traffic_and_cover_the_dashboard() {
    // One instance on the memory backend, with faults to inject.
    let faults = Faults::new();
    let cache = Cache::builder()
        .namespace("gateway")
        .timeout(Duration::from_millis(200))
        .faults(faults.clone())
        .build_memory()
        .unwrap();
    let alone = start(Some(cache), &[]).await;
    for _ in 0..3 {
        assert_eq!(get(&alone, "/v1/prices/gpt-4").await.0, StatusCode::OK);
    }
    for _ in 0..2 {
        assert_eq!(
            get(&alone, "/v1/prices/no-such-model").await.0,
            StatusCode::NOT_FOUND
        );
    }
    counts_match_the_price_traffic(&alone).await;

    // Redis failing: a server error and timeouts, answered from the database.
    faults
        .on(Calls::Reads)
        .fail(Fault::Server("ERR injected".into()));
    assert_eq!(
        get(&alone, "/v1/prices/claude-3-opus").await.0,
        StatusCode::OK
    );
    faults.heal();
    faults.on(Calls::All).fail(Fault::Timeout);
    assert_eq!(get(&alone, "/v1/prices/gpt-4o").await.0, StatusCode::OK);
    faults.heal();

    // Two instances on one Redis: an update on one drops the other's local
    // copy (client tracking); a restart of Redis flushes the local tiers.
    let mut redis = RedisServer::start("gateway-metrics");
    let one = start(None, &[("REDIS_URL", redis.url())]).await;
    let other = start(None, &[("REDIS_URL", redis.url())]).await;
    for base in [&one, &other] {
        assert_eq!(get(base, "/v1/prices/gpt-4").await.0, StatusCode::OK);
    }
    let put = reqwest::Client::new()
        .put(format!("{one}/v1/prices/gpt-4"))
        .bearer_auth("admin-secret")
        .json(&json!({ "input_per_1k": 0.02, "output_per_1k": 0.04 }))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    let invalidated = |text: &str| value(text, "cache_local_invalidations_total", &PRICE) >= 1.0;
    assert!(invalidated(&metrics_once(&other, invalidated).await));
    redis.restart();
    let flushed = |text: &str| value(text, "cache_local_flushes_total", &PRICE) >= 1.0;
    let text = metrics_once(&other, flushed).await;
    assert!(flushed(&text), "{text}");

    dashboard_charts_only_exported_names(&text);
    assert!(value(&text, "cache_backend_errors_total", &[("kind", "server")]) >= 1.0);
    assert!(value(&text, "cache_timeouts_total", &[]) >= 1.0);
}
