//! What the toolkit reports: spans with OpenTelemetry's database attributes
//! (and never a key or a value), and figures through the `metrics` facade
//! that match the operations performed. One metrics recorder per process, so
//! the facade is checked by one test.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache_core::LoadPolicy;
use cache_tests::RedisServer;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Every span's name and fields, as text.
type Seen = Arc<Mutex<Vec<(String, HashMap<String, String>)>>>;

/// A subscriber that keeps every span it is shown.
struct Spans {
    seen: Seen,
    next: AtomicU64,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Spans {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = HashMap::new();
        span.record(&mut Fields(&mut fields));
        let name = span.metadata().name().to_owned();
        self.seen.lock().unwrap().push((name, fields));
        Id::from_u64(self.next.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, id: &Id, values: &Record<'_>) {
        // Ids are positions in `seen`, from 1.
        let at = usize::try_from(id.into_u64() - 1).unwrap();
        let mut seen = self.seen.lock().unwrap();
        values.record(&mut Fields(&mut seen[at].1));
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[tokio::test]
async fn redis_calls_carry_opentelemetry_database_attributes_and_no_key_or_value() {
    let redis = RedisServer::start("spans");
    let cache = redis.cache().await;
    let secrets = cache.keyspace("s").typed::<String, String>().unwrap();
    let seen = Seen::default();
    let subscriber = Spans {
        seen: Arc::clone(&seen),
        next: AtomicU64::new(0),
    };
    let guard = tracing::subscriber::set_default(subscriber);
    secrets
        .set("user-okapi", &"password-hunter2".to_owned())
        .await
        .unwrap();
    secrets.get("user-okapi").await.unwrap();
    drop(guard);

    let seen = seen.lock().unwrap();
    let calls: Vec<&HashMap<String, String>> = seen
        .iter()
        .filter(|(name, _)| name == "cache.redis")
        .map(|(_, fields)| fields)
        .collect();
    let operations: Vec<&str> = calls
        .iter()
        .map(|fields| fields["db.operation.name"].as_str())
        .collect();
    assert_eq!(operations, ["SET", "GET"]);
    let port = redis.url().rsplit(':').next().unwrap().to_owned();
    for fields in &calls {
        assert_eq!(fields["db.system.name"], "redis");
        assert_eq!(fields["otel.name"], fields["db.operation.name"]);
        assert_eq!(fields["otel.kind"], "client");
        assert_eq!(fields["server.address"], "127.0.0.1");
        assert_eq!(fields["server.port"], port);
        assert_eq!(fields["db.namespace"], "0");
    }
    for (name, fields) in seen.iter() {
        for value in fields.values() {
            assert!(
                !value.contains("okapi") && !value.contains("hunter2"),
                "span {name} shows a key or value: {fields:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_stale_answer_marks_its_span_with_the_reason() {
    let cache = cache_core::Cache::memory();
    let policy = LoadPolicy::DEFAULT.fail_safe(Duration::from_secs(60));
    let prices = (cache.keyspace("price").ttl(Duration::from_millis(50)))
        .load_policy(policy)
        .typed::<String, u64>()
        .unwrap();
    prices.set("gpt-4", &30).await.unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    let seen = Seen::default();
    let subscriber = Spans {
        seen: Arc::clone(&seen),
        next: AtomicU64::new(0),
    };
    let guard = tracing::subscriber::set_default(subscriber);
    let failing = || async { Err::<Option<u64>, _>("database down") };
    let stale = prices.try_get_or_load("gpt-4", failing).await.unwrap();
    drop(guard);
    assert_eq!(stale, Some(30));
    let seen = seen.lock().unwrap();
    let marked: Vec<_> = (seen.iter())
        .filter(|(name, fields)| name == "cache.op" && fields["operation"] == "get_or_load")
        .map(|(_, fields)| fields.get("cache.stale").cloned())
        .collect();
    assert_eq!(marked, [Some("loader_error".to_owned())], "{seen:?}");
}

#[tokio::test]
async fn the_metrics_facade_counts_what_was_done() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let redis = RedisServer::start("metrics");
    let cache = redis.cache().await;
    let namespace = cache.namespace().unwrap_or_default().to_owned();
    counted_traffic(&cache).await;
    tag_traffic(&cache).await;
    let (page_len, stored_len) = compressed_page(&cache).await;

    let (counters, histograms) = figures(&snapshotter);
    let keyspace = |prefix: &str| {
        vec![
            ("keyspace".to_owned(), prefix.to_owned()),
            ("namespace".to_owned(), namespace.clone()),
        ]
    };
    let count = |name: &str, labels: Vec<(String, String)>| {
        counters
            .get(&(name.to_owned(), labels))
            .copied()
            .unwrap_or_default()
    };
    let price = ["misses", "loads", "hits", "local_hits"]
        .map(|figure| count(&format!("cache_{figure}_total"), keyspace("price")));
    assert_eq!(price, [2, 1, 2, 1], "{counters:?}");
    assert!(count("cache_local_invalidations_total", keyspace("price")) >= 1);
    let wrong_type = vec![
        ("kind".to_owned(), "wrong_type".to_owned()),
        ("operation".to_owned(), "GET".to_owned()),
    ];
    assert_eq!(count("cache_backend_errors_total", wrong_type), 1);
    let mut stale = keyspace("safe");
    stale.push(("reason".to_owned(), "loader_error".to_owned()));
    stale.sort();
    assert_eq!(count("cache_stale_answers_total", stale), 1, "{counters:?}");
    let handle = vec![("namespace".to_owned(), namespace.clone())];
    let tag_figures = (
        count("cache_tag_invalidations_total", handle),
        count("cache_tag_invalidated_reads_total", keyspace("page")),
    );
    assert_eq!(
        tag_figures,
        (2, 1),
        "tags invalidated, reads that found one"
    );
    let compressed = (
        count("cache_compress_input_bytes_total", keyspace("page-z")),
        count("cache_compress_output_bytes_total", keyspace("page-z")),
    );
    assert_eq!(compressed, (page_len, stored_len), "{counters:?}");
    // Labels never carry a key.
    for (name, labels) in counters.keys() {
        let key = labels
            .iter()
            .find(|(_, value)| KEYS.contains(&value.as_str()));
        assert!(key.is_none(), "{name} {labels:?}");
    }
    let loads = ("cache_load_seconds".to_owned(), namespace.clone());
    assert_eq!(histograms.get(&loads), Some(&2));
    // Every Redis call of the test: GET, GET (read before the load), SET,
    // GET+PTTL twice with a local tier... at least the five above.
    assert!(
        histograms
            .get(&("cache_backend_call_seconds".to_owned(), String::new()))
            .copied()
            .unwrap_or(0)
            >= 5
    );
    // The handle's own figures agree.
    let stats = cache.keyspace_stats("price").unwrap();
    assert_eq!(
        (stats.misses, stats.loads, stats.hits, stats.local_hits),
        (2, 1, 2, 1)
    );
}

/// The keys the metrics test writes, which no label may carry.
const KEYS: [&str; 4] = ["a", "l", "p", "tenant:a"];

/// A page written to a compressed keyspace: its JSON's length (what the
/// compressor took in) and what Redis holds (what it gave out).
async fn compressed_page(cache: &cache_core::Cache) -> (u64, u64) {
    let pages = cache
        .keyspace("page-z")
        .compress(cache_core::Compression::Lz4);
    let pages = pages.typed::<String, String>().unwrap();
    let page = "<li>item</li>".repeat(400);
    pages.set("home", &page).await.unwrap();
    let stored = cache.raw_get(&pages.key("home")).await.unwrap().unwrap();
    (page.len() as u64 + 2, stored.len() as u64)
}

/// Traffic whose every figure the metrics test checks: on `price` (a local
/// tier) two misses, one load, a remote and a local hit; one WRONGTYPE GET;
/// one stale answer after a failed load on `safe`.
async fn counted_traffic(cache: &cache_core::Cache) {
    let prices = cache
        .keyspace("price")
        .local(100, Duration::from_secs(60))
        .load_policy(LoadPolicy::DEFAULT)
        .typed::<String, u64>()
        .unwrap();
    cache_tests::local_tier_live(|| prices.local_is_live()).await;
    prices.get("a").await.unwrap(); // miss
    prices.get_or_load("a", || async { Some(1) }).await.unwrap(); // miss, load
    // The load's own write comes back as an invalidation: wait for it.
    while prices.local_stats().unwrap().invalidations == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    prices.get("a").await.unwrap(); // remote hit, kept
    prices.get("a").await.unwrap(); // local hit
    let wrong = cache.keyspace("list").typed::<String, u64>().unwrap();
    let mut raw = cache.redis_connection().unwrap();
    redis::cmd("RPUSH")
        .arg(wrong.key("l"))
        .arg("x")
        .query_async::<()>(&mut raw)
        .await
        .unwrap();
    assert!(wrong.get("l").await.unwrap_err().is_wrong_type());
    // A stale answer after a failed load (fail-safe), counted by its reason.
    let safe = cache.keyspace("safe").ttl(Duration::from_millis(50));
    let safe = safe.load_policy(LoadPolicy::DEFAULT.fail_safe(Duration::from_secs(60)));
    let safe = safe.typed::<String, u64>().unwrap();
    safe.set("b", &2).await.unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    let failing = || async { Err::<Option<u64>, _>("database down") };
    assert_eq!(safe.try_get_or_load("b", failing).await.unwrap(), Some(2));
}

/// One call invalidating two tags, and a read that finds its entry
/// invalidated by one of them.
async fn tag_traffic(cache: &cache_core::Cache) {
    let pages = cache
        .keyspace("page")
        .tagged()
        .typed::<String, u64>()
        .unwrap();
    pages.set_tagged("p", &3, &["tenant:a"]).await.unwrap();
    cache
        .invalidate_tags(&["tenant:a", "tenant:b"])
        .await
        .unwrap();
    assert_eq!(pages.get("p").await.unwrap(), None);
    assert_eq!(cache.stats().tag_invalidations, 1, "one call");
}

/// Counters by name and sorted labels, and histogram sample counts by name
/// and namespace (other tests of this binary may load meanwhile).
type Counters = HashMap<(String, Vec<(String, String)>), u64>;
type Histograms = HashMap<(String, String), usize>;

fn figures(snapshotter: &metrics_util::debugging::Snapshotter) -> (Counters, Histograms) {
    let mut counters = Counters::new();
    let mut histograms = Histograms::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let name = key.key().name().to_owned();
        let mut labels: Vec<(String, String)> = key
            .key()
            .labels()
            .map(|label| (label.key().to_owned(), label.value().to_owned()))
            .collect();
        labels.sort();
        match value {
            DebugValue::Counter(count) => {
                counters.insert((name, labels), count);
            }
            DebugValue::Histogram(values) => {
                let of =
                    |(key, value): &(String, String)| (key == "namespace").then(|| value.clone());
                let space = labels.iter().find_map(of).unwrap_or_default();
                *histograms.entry((name, space)).or_default() += values.len();
            }
            DebugValue::Gauge(_) => {}
        }
    }
    (counters, histograms)
}
