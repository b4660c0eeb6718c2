//! The gateway over real HTTP, with a spawned redis-server and a real SQLite
//! database: each test starts one or two instances in-process on free ports.

// The helpers' unwraps are assertions: a failure there is the test's failure.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use cache_testkit::RedisServer;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The bound on every Redis call in these tests.
const REDIS_TIMEOUT: Duration = Duration::from_millis(300);

/// One running instance of the gateway.
struct Instance {
    base: String,
}

async fn start(redis: &RedisServer, rate_limit: u64) -> Instance {
    start_with(redis, rate_limit, REDIS_TIMEOUT).await
}

/// An instance whose Redis calls are bounded by `timeout`.
async fn start_with(redis: &RedisServer, rate_limit: u64, timeout: Duration) -> Instance {
    let settings: HashMap<&str, String> = HashMap::from([
        ("REDIS_URL", redis.url().to_owned()),
        ("GATEWAY_RATE_LIMIT", rate_limit.to_string()),
        (
            "GATEWAY_JWT_SECRET",
            "shared by the instances of one test".to_owned(),
        ),
        ("GATEWAY_ADMIN_TOKEN", "admin-secret".to_owned()),
        ("GATEWAY_REDIS_TIMEOUT_MS", timeout.as_millis().to_string()),
        ("GATEWAY_ADDR", "127.0.0.1:0".to_owned()),
    ]);
    let config = gateway::Config::from_lookup(|name| settings.get(name).cloned()).unwrap();
    let service = gateway::Gateway::start(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind(config.addr).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(gateway::serve(service, listener, std::future::pending()));
    Instance { base }
}

impl Instance {
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> reqwest::Response {
        let client = reqwest::Client::new();
        let mut request = client
            .request(method, format!("{}{path}", self.base))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    async fn login(&self, user: &str) -> String {
        let response = self
            .send(
                reqwest::Method::POST,
                "/v1/login",
                None,
                json!({ "user": user }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    async fn chat(&self, token: &str) -> reqwest::Response {
        let body = json!({ "message": "hello" });
        self.send(reqwest::Method::POST, "/v1/chat", Some(token), body)
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_price_is_read_from_the_database_once_and_a_put_shows_at_once() {
    let redis = RedisServer::start("gateway_prices");
    // Single flight is under test, not the timeout: 1,000 requests on two
    // cores can hold a reply past 300 ms, and a read that times out is a
    // fail-open miss that rightly loads again.
    let gateway = start_with(&redis, 60, Duration::from_secs(5)).await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/prices/claude-3-opus", gateway.base);
    let requests: Vec<_> = (0..1_000)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let response = client.get(url).send().await.unwrap();
                (response.status(), response.json::<Value>().await.unwrap())
            })
        })
        .collect();
    for request in requests {
        let (status, body) = request.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["input_per_1k"], json!(0.015));
    }
    let (_, stats) = gateway.get("/stats").await;
    assert_eq!(stats["database_reads"], json!(1), "{stats}");

    let new_price = json!({ "input_per_1k": 0.01, "output_per_1k": 0.05 });
    let put = gateway
        .send(
            reqwest::Method::PUT,
            "/v1/prices/claude-3-opus",
            Some("admin-secret"),
            new_price,
        )
        .await;
    assert_eq!(put.status(), StatusCode::OK);
    let (status, body) = gateway.get("/v1/prices/claude-3-opus").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["input_per_1k"], json!(0.01));
    assert_eq!(body["output_per_1k"], json!(0.05));

    // Unknown models are 404, bad updates 400 or 403, each with a message.
    let (status, body) = gateway.get("/v1/prices/no-such-model").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("no-such-model"));
    let wrong = json!({ "input_per_1k": -1.0, "output_per_1k": 0.05 });
    let put = gateway
        .send(
            reqwest::Method::PUT,
            "/v1/prices/gpt-4",
            Some("admin-secret"),
            wrong,
        )
        .await;
    assert_eq!(put.status(), StatusCode::BAD_REQUEST);
    let put = gateway
        .send(
            reqwest::Method::PUT,
            "/v1/prices/gpt-4",
            Some("not-admin"),
            new_price_body(),
        )
        .await;
    assert_eq!(put.status(), StatusCode::FORBIDDEN);
}

fn new_price_body() -> Value {
    json!({ "input_per_1k": 0.5, "output_per_1k": 0.5 })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_refused_at_once_and_for_as_long_as_it_would_have_lived() {
    let redis = RedisServer::start("gateway_revocation");
    let (one, two) = (start(&redis, 60).await, start(&redis, 60).await);
    let token = one.login("ada").await;
    assert_eq!(one.chat(&token).await.status(), StatusCode::OK);
    assert_eq!(two.chat(&token).await.status(), StatusCode::OK);

    let logout = one
        .send(reqwest::Method::POST, "/v1/logout", Some(&token), json!({}))
        .await;
    assert_eq!(logout.status(), StatusCode::OK);
    let until = logout.json::<Value>().await.unwrap()["until"]
        .as_u64()
        .unwrap();
    for instance in [&one, &two] {
        let refused = instance.chat(&token).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        let body: Value = refused.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("revoked"),
            "{body}"
        );
    }

    // The revocation lives as long as the token: its flag expires with it.
    let mut raw = redis.raw().await;
    let (_, keys): (u64, Vec<String>) = redis::cmd("SCAN")
        .arg(0)
        .arg("MATCH")
        .arg("gateway:revoked-token:*")
        .arg("COUNT")
        .arg(1000)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let left: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut raw)
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token_left_ms = (until - now) as i64 * 1000;
    assert!(
        (left - token_left_ms).abs() < 2_000,
        "flag {left} ms, token {token_left_ms} ms"
    );

    // A new token of the same user is not affected.
    let fresh = two.login("ada").await;
    assert_eq!(one.chat(&fresh).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_frozen_chat_fails_closed_and_prices_fail_open() {
    let redis = RedisServer::start("gateway_frozen");
    let gateway = start(&redis, 60).await;
    let token = gateway.login("ada").await;
    assert_eq!(gateway.chat(&token).await.status(), StatusCode::OK);

    redis.freeze();
    let started = Instant::now();
    let refused = gateway.chat(&token).await;
    let took = started.elapsed();
    let status = refused.status();
    let body: Value = refused.json().await.unwrap();
    let (price_status, price) = gateway.get("/v1/prices/gpt-4").await;
    redis.resume();

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        took < REDIS_TIMEOUT + Duration::from_millis(700),
        "took {took:?}"
    );
    assert!(
        body["error"].as_str().unwrap().contains("unavailable"),
        "{body}"
    );
    assert_eq!(price_status, StatusCode::OK, "{price}");
    assert_eq!(price["input_per_1k"], json!(0.03));
    // And it recovers once Redis is back.
    assert_eq!(gateway.chat(&token).await.status(), StatusCode::OK);
}

/// `count` chat requests at once with `token`, alternating between the two
/// instances; the responses in the order sent.
async fn chats_on_both(
    one: &Instance,
    two: &Instance,
    token: &str,
    count: usize,
) -> Vec<reqwest::Response> {
    let requests: Vec<_> = (0..count)
        .map(|i| {
            let base = if i % 2 == 0 { &one.base } else { &two.base }.clone();
            let token = token.to_owned();
            tokio::spawn(async move { Instance { base }.chat(&token).await })
        })
        .collect();
    let mut responses = Vec::with_capacity(count);
    for request in requests {
        responses.push(request.await.unwrap());
    }
    responses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_lets_exactly_the_limit_through_across_two_instances() {
    let redis = RedisServer::start("gateway_rate_limit");
    let (one, two) = (start(&redis, 5).await, start(&redis, 5).await);
    let token = one.login("ada").await;
    let (mut allowed, mut limited) = (0, 0);
    for response in chats_on_both(&one, &two, &token, 20).await {
        match response.status() {
            StatusCode::OK => allowed += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                let retry_after = response.headers()["retry-after"].to_str().unwrap();
                let seconds: u64 = retry_after.parse().unwrap();
                assert!((1..=60).contains(&seconds), "Retry-After {seconds}");
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((allowed, limited), (5, 15));
    // Another user has a window of their own.
    let other = two.login("grace").await;
    assert_eq!(one.chat(&other).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_numbers_are_unique_across_two_instances() {
    let redis = RedisServer::start("gateway_sequences");
    let (one, two) = (start(&redis, 1_000).await, start(&redis, 1_000).await);
    let token = one.login("ada").await;
    let mut seen = HashSet::new();
    for response in chats_on_both(&one, &two, &token, 200).await {
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        let seq = body["seq"].as_i64().unwrap();
        assert!(seen.insert(seq), "sequence number {seq} handed out twice");
    }
    assert_eq!(seen.len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors_that_say_what_was_wrong() {
    let redis = RedisServer::start("gateway_bad_requests");
    let gateway = start(&redis, 60).await;
    let client = reqwest::Client::new();
    let error_of = |response: reqwest::Response| async move {
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        (status, body["error"].as_str().unwrap().to_owned())
    };

    let chat = |token: Option<&'static str>| {
        let mut request = client
            .post(format!("{}/v1/chat", gateway.base))
            .json(&json!({ "message": "hi" }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let (status, error) = error_of(chat(None).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error.contains("Authorization"), "{error}");
    let (status, error) = error_of(chat(Some("not-a-jwt")).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error.contains("invalid token"), "{error}");

    let login = |body: &'static str| {
        client
            .post(format!("{}/v1/login", gateway.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let (status, error) = error_of(login(r#"{"user": ""}"#).await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error.contains("`user`"), "{error}");
    let (status, error) = error_of(login(r#"{"usr": "ada"}"#).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error.contains("missing field `user`"), "{error}");
    let (status, error) = error_of(login("{not json").await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error.contains("JSON"), "{error}");

    let (status, error) = error_of(
        client
            .get(format!("{}/v2/prices", gateway.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error.contains("/v2/prices"), "{error}");
    let delete = client.delete(format!("{}/v1/prices/gpt-4", gateway.base));
    let (status, error) = error_of(delete.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(error.contains("DELETE"), "{error}");
}
