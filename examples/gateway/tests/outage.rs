//! The gateway with Redis failing on purpose and no server at all: the
//! cache's injected faults (`cache_core::testing`) on the memory backend,
//! over real HTTP and a real in-memory SQLite table.

// The helpers' unwraps are assertions: a failure there is the test's failure.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use cache_core::Cache;
use cache_core::testing::{Calls, Fault, Faults};
use gateway::{Config, Gateway, PriceTable};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The bound on every Redis call in these tests.
const REDIS_TIMEOUT: Duration = Duration::from_millis(200);
/// How far past its timeout a request may return (scheduling on a busy machine).
const MARGIN: Duration = Duration::from_millis(700);

/// A gateway over a memory-backed cache that `faults` controls.
struct Faulty {
    base: String,
    cache: Cache,
    table: PriceTable,
}

async fn start(faults: &Faults) -> Faulty {
    let config = Config::from_lookup(|name| match name {
        "GATEWAY_ADDR" => Some("127.0.0.1:0".to_owned()),
        _ => None,
    })
    .unwrap();
    let cache = Cache::builder()
        .namespace("gateway")
        .timeout(REDIS_TIMEOUT)
        .faults(faults.clone())
        .build_memory()
        .unwrap();
    let table = PriceTable::open(&config.database_url).await.unwrap();
    let service = Gateway::new(cache.clone(), table.clone(), &config).unwrap();
    let listener = tokio::net::TcpListener::bind(config.addr).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(gateway::serve(service, listener, std::future::pending()));
    Faulty { base, cache, table }
}

impl Faulty {
    async fn price(&self, model: &str) -> (StatusCode, Value) {
        let url = format!("{}/v1/prices/{model}", self.base);
        let response = reqwest::get(url).await.unwrap();
        (response.status(), response.json().await.unwrap())
    }

    async fn login(&self, user: &str) -> String {
        let client = reqwest::Client::new();
        let response = client
            .post(format!("{}/v1/login", self.base))
            .json(&json!({ "user": user }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    async fn chat(&self, token: &str) -> StatusCode {
        let client = reqwest::Client::new();
        let response = client
            .post(format!("{}/v1/chat", self.base))
            .bearer_auth(token)
            .json(&json!({ "message": "hello" }))
            .send()
            .await
            .unwrap();
        response.status()
    }
}

/// Redis down: prices fail open (served from the database), chat fails
/// closed (503, never a revoked token let through), and both recover when
/// Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_prices_fail_open_and_chat_fails_closed() {
    let faults = Faults::new();
    let gateway = start(&faults).await;
    let token = gateway.login("ada").await;
    assert_eq!(gateway.chat(&token).await, StatusCode::OK);

    faults.down();
    let before = gateway.cache.stats();
    let (status, price) = gateway.price("gpt-4").await;
    assert_eq!(status, StatusCode::OK, "{price}");
    assert_eq!(price["input_per_1k"], json!(0.03));
    assert_eq!(gateway.chat(&token).await, StatusCode::SERVICE_UNAVAILABLE);
    let during = gateway.cache.stats().since(&before);
    assert!(during.backend_errors >= 2, "{during:?}");
    assert_eq!(during.loads, 1, "{during:?}");

    faults.up();
    assert_eq!(gateway.chat(&token).await, StatusCode::OK);
    let (status, _) = gateway.price("gpt-4").await;
    assert_eq!(status, StatusCode::OK);
}

/// Every Redis read hangs: each request still answers within one timeout,
/// prices from the database and chat with 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_reads_cost_each_request_one_timeout() {
    let faults = Faults::new();
    let gateway = start(&faults).await;
    let token = gateway.login("ada").await;

    faults.on(Calls::All).fail(Fault::Timeout);
    let started = Instant::now();
    let (status, _) = gateway.price("gpt-4").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        started.elapsed() < REDIS_TIMEOUT * 2 + MARGIN,
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    assert_eq!(gateway.chat(&token).await, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < REDIS_TIMEOUT + MARGIN,
        "{:?}",
        started.elapsed()
    );
    assert!(gateway.cache.stats().timeouts >= 2);
}

/// With slow Redis reads, 200 concurrent requests for a cold price read the
/// database once: the stampede protection holds when Redis is slow too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stampede_on_a_slow_redis_reads_the_database_once() {
    let faults = Faults::new();
    let gateway = start(&faults).await;
    faults.on(Calls::Reads).delay(Duration::from_millis(50));
    let reads_before = gateway.table.reads();
    let requests = (0..200).map(|_| gateway.price("gpt-4"));
    for (status, price) in futures_util::future::join_all(requests).await {
        assert_eq!(status, StatusCode::OK, "{price}");
    }
    assert_eq!(gateway.table.reads() - reads_before, 1);
}
