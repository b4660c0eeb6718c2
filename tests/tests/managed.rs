//! Servers as some managed services configure them: one that refuses client
//! tracking (`CLIENT` renamed away, or denied by an ACL) still builds a
//! handle whose local tier serves, bounded by its TTL instead of kept
//! coherent, with one warning and the metric `cache_tracking_refused_total`;
//! and a password rotated while the handle runs reaches its next connections
//! through the credentials hook.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use cache_tests::RedisServer;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// One metrics recorder for the process, installed by the first test.
fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().unwrap();
        snapshotter
    })
}

/// `cache_tracking_refused_total` for `namespace`.
fn refusals(namespace: &str) -> u64 {
    let snapshot = snapshotter().snapshot().into_vec();
    let found = snapshot.into_iter().find_map(|(key, _, _, value)| {
        let key = key.key();
        let ours = key.labels().any(|label| label.value() == namespace);
        match value {
            DebugValue::Counter(count) if ours && key.name() == "cache_tracking_refused_total" => {
                Some(count)
            }
            _ => None,
        }
    });
    found.unwrap_or_default()
}

async fn a_refused_tracking_gives_a_ttl_bounded_local_tier(redis: RedisServer) {
    let _ = snapshotter();
    let cache = redis.cache().await;
    let namespace = cache.namespace().unwrap_or_default().to_owned();
    let ttl = Duration::from_millis(800);
    let values = (cache.keyspace("value"))
        .ttl(Duration::from_secs(60))
        .local(100, ttl)
        .typed::<u64, u64>()
        .unwrap();
    cache_tests::local_tier_live(|| values.local_is_live()).await;
    values.set(&1, &1).await.unwrap();
    assert_eq!(values.get(&1).await.unwrap(), Some(1));
    let written = Instant::now();
    // Another client changes the key: no invalidation comes.
    let mut raw = redis.raw().await;
    let _: () = redis::cmd("SET")
        .arg(values.key(&1))
        .arg("2")
        .query_async(&mut raw)
        .await
        .unwrap();
    let local_hits = values.local_stats().unwrap().hits;
    assert_eq!(values.get(&1).await.unwrap(), Some(1), "served locally");
    assert_eq!(values.local_stats().unwrap().hits, local_hits + 1);
    // Within the tier's TTL, the change is seen.
    while values.get(&1).await.unwrap() != Some(2) {
        assert!(
            written.elapsed() < ttl + Duration::from_millis(300),
            "past the TTL"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A write through the handle drops its own copy at once.
    values.set(&1, &3).await.unwrap();
    assert_eq!(values.get(&1).await.unwrap(), Some(3));
    assert_eq!(refusals(&namespace), 1, "one refusal counted");
}

/// Both servers in one test: the metrics recorder is one per process, and
/// its snapshots are best read by one test at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_renamed_away_or_denied_by_an_acl() {
    let redis = RedisServer::start_with("client_renamed", &["--rename-command", "CLIENT", ""]);
    a_refused_tracking_gives_a_ttl_bounded_local_tier(redis).await;
    let acl = [
        "--user", "default", "on", "nopass", "~*", "&*", "+@all", "-client",
    ];
    let redis = RedisServer::start_with("client_denied", &acl);
    a_refused_tracking_gives_a_ttl_bounded_local_tier(redis).await;
}

/// A password rotated on the server while the handle runs: with a
/// credentials hook that returns the new one, the handle reconnects and
/// goes on (its local tier too); a handle with the old password in its URL
/// cannot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_password_is_used_from_the_next_connection() {
    // The default user may only PING and INFO (the harness's readiness check).
    let default = [
        "--user", "default", "on", "nopass", "-@all", "+ping", "+info",
    ];
    let app = ["--user", "app", "on", ">one", "~*", "&*", "+@all"];
    let acl: Vec<&str> = default.into_iter().chain(app).collect();
    let redis = RedisServer::start_with("rotated_password", &acl);
    let port = cache_tests::port_of(redis.url());
    let password = Arc::new(Mutex::new("one".to_owned()));
    let current = Arc::clone(&password);
    let cache = cache_core::Cache::builder()
        .url(format!("redis://127.0.0.1:{port}"))
        .namespace(redis.namespace())
        .credentials(move || {
            let password = current.lock().unwrap().clone();
            async move {
                let username = Some("app".to_owned());
                Ok(cache_core::Credentials { username, password })
            }
        })
        .build()
        .await
        .unwrap();
    let old = cache_core::Cache::builder()
        .url(format!("redis://app:one@127.0.0.1:{port}"))
        .namespace(redis.namespace())
        .build()
        .await
        .unwrap();
    let values = (cache.keyspace("value"))
        .local(100, Duration::from_secs(60))
        .typed::<u64, u64>()
        .unwrap();
    cache_tests::local_tier_live(|| values.local_is_live()).await;
    values.set(&1, &1).await.unwrap();
    let old_values = old.keyspace("value").typed::<u64, u64>().unwrap();
    assert_eq!(old_values.get(&1).await.unwrap(), Some(1));

    let admin = redis::Client::open(format!("redis://app:one@127.0.0.1:{port}")).unwrap();
    let mut admin = admin.get_multiplexed_async_connection().await.unwrap();
    let rotate = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("app")
        .arg("resetpass")
        .arg(">two")
        .clone();
    let _: () = rotate.query_async(&mut admin).await.unwrap();
    *password.lock().unwrap() = "two".to_owned();
    let kill = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("USER")
        .arg("app")
        .clone();
    let _: u64 = kill.query_async(&mut admin).await.unwrap();

    let started = Instant::now();
    while values.set(&2, &2).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never reconnected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(values.get(&2).await.unwrap(), Some(2));
    cache_tests::local_tier_live(|| values.local_is_live()).await;
    let refused = old_values.get(&1).await;
    assert!(
        refused.is_err(),
        "the old password still worked: {refused:?}"
    );
}
