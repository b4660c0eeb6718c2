//! Servers as some managed services configure them: one that refuses client
//! tracking (`CLIENT` renamed away, or denied by an ACL) still builds a
//! handle whose local tier serves, bounded by its TTL instead of kept
//! coherent, with one warning and the metric `cache_tracking_refused_total`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cache_tests::TestRedis;
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

async fn a_refused_tracking_gives_a_ttl_bounded_local_tier(redis: TestRedis) {
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
    let redis = TestRedis::start_with("client_renamed", &["--rename-command", "CLIENT", ""]);
    a_refused_tracking_gives_a_ttl_bounded_local_tier(redis).await;
    let acl = [
        "--user", "default", "on", "nopass", "~*", "&*", "+@all", "-client",
    ];
    let redis = TestRedis::start_with("client_denied", &acl);
    a_refused_tracking_gives_a_ttl_bounded_local_tier(redis).await;
}
