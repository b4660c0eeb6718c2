//! Tags on every backend: `invalidate_tag` drops the entries written under a
//! tag in every keyspace and nothing else, `invalidate_all` a whole tagged
//! keyspace, derived tag fields and loader tags tag entries, a load that
//! began before an invalidation does not store a fresh-looking entry, a lost
//! tag state reads as invalidated, and fail-safe answers an invalidated
//! entry as stale when the reload fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_core::{Cache, Cacheable, Freshness, LoadPolicy, StaleReason, TypedCache};
use cache_tests::Env;
use serde::{Deserialize, Serialize};

cache_tests::backend_suite!(
    a_tag_drops_its_entries_in_every_keyspace_and_nothing_else,
    invalidate_all_drops_its_keyspace_only,
    tag_fields_and_loader_tags_tag_entries,
    a_load_that_began_before_an_invalidation_is_answered_but_not_stored,
    a_lost_tag_state_reads_as_invalidated,
    fail_safe_answers_an_invalidated_entry_when_the_reload_fails,
    tags_need_a_tagged_keyspace,
);

fn pages(cache: &Cache, prefix: &str) -> TypedCache<String, String> {
    let pages = cache.keyspace(prefix).ttl(Duration::from_secs(60)).tagged();
    pages.typed::<String, String>().unwrap()
}

fn text(value: &str) -> String {
    value.to_owned()
}

async fn a_tag_drops_its_entries_in_every_keyspace_and_nothing_else(env: Env) {
    let (pages, menus) = (pages(&env.cache, "page"), pages(&env.cache, "menu"));
    pages
        .set_tagged("/a", &text("a"), &["tenant:acme"])
        .await
        .unwrap();
    pages
        .set_tagged("/g", &text("g"), &["tenant:globex"])
        .await
        .unwrap();
    pages.set("/plain", &text("p")).await.unwrap();
    let both = ["tenant:acme", "tenant:globex"];
    menus.set_tagged("top", &text("m"), &both).await.unwrap();
    let acme = ["tenant:acme"];
    pages.set_many(&[(&text("/b"), &text("b"))]).await.unwrap();
    menus.set_tagged("side", &text("s"), &acme).await.unwrap();
    assert_eq!(pages.get("/a").await.unwrap().as_deref(), Some("a"));

    env.cache.invalidate_tag("tenant:acme").await.unwrap();

    assert_eq!(pages.get("/a").await.unwrap(), None);
    assert_eq!(
        menus.get("top").await.unwrap(),
        None,
        "one of its tags changed"
    );
    assert_eq!(menus.get("side").await.unwrap(), None);
    assert!(!pages.exists("/a").await.unwrap());
    assert_eq!(pages.ttl("/a").await.unwrap(), cache_core::Ttl::Missing);
    let got = pages.get_many(&["/a", "/g", "/plain", "/b"]).await.unwrap();
    assert_eq!(
        got,
        [None, Some(text("g")), Some(text("p")), Some(text("b"))]
    );
    // Written again after the invalidation: served.
    pages.set_tagged("/a", &text("a2"), &acme).await.unwrap();
    assert_eq!(pages.get("/a").await.unwrap().as_deref(), Some("a2"));
    // get_or_load reloads an invalidated entry.
    env.cache
        .invalidate_tags(&["tenant:acme", "tenant:x"])
        .await
        .unwrap();
    let loaded = pages
        .get_or_load("/a", || async { Some(text("a3")) })
        .await
        .unwrap();
    assert_eq!(loaded.as_deref(), Some("a3"));
    let stats = env.cache.stats();
    assert_eq!(stats.tag_invalidations, 2);
    assert!(stats.tag_invalidated_reads >= 6, "{stats:?}");
}

async fn invalidate_all_drops_its_keyspace_only(env: Env) {
    let (pages, menus) = (pages(&env.cache, "page"), pages(&env.cache, "menu"));
    for key in ["1", "2", "3"] {
        pages.set(key, &text(key)).await.unwrap();
        menus.set(key, &text(key)).await.unwrap();
    }
    pages.invalidate_all().await.unwrap();
    let (keys, some) = (["1", "2", "3"], |k: &str| Some(text(k)));
    assert_eq!(pages.get_many(&keys).await.unwrap(), [None, None, None]);
    assert_eq!(menus.get_many(&keys).await.unwrap(), keys.map(some));
    // Another version is another keyspace: untouched.
    let v2 = env.cache.keyspace("page").version(2).tagged();
    let v2 = v2.typed::<String, String>().unwrap();
    v2.set("1", &text("v2")).await.unwrap();
    pages.invalidate_all().await.unwrap();
    assert_eq!(v2.get("1").await.unwrap().as_deref(), Some("v2"));
    pages.set("1", &text("again")).await.unwrap();
    assert_eq!(pages.get("1").await.unwrap().as_deref(), Some("again"));
}

#[derive(Serialize, Deserialize, Cacheable, Debug, Clone, PartialEq)]
#[cache(prefix = "price", ttl = "1m")]
struct Price {
    #[cache(key)]
    model: String,
    #[cache(tag)]
    provider: String,
    #[cache(tag = "region")]
    zone: u32,
    cents: u64,
}

fn price(model: &str, provider: &str, zone: u32) -> Price {
    let (model, provider) = (model.to_owned(), provider.to_owned());
    Price {
        model,
        provider,
        zone,
        cents: 3,
    }
}

async fn tag_fields_and_loader_tags_tag_entries(env: Env) {
    let prices = env.cache.typed::<Price>().unwrap();
    prices.put(&price("gpt-4", "openai", 1)).await.unwrap();
    prices.put(&price("claude", "anthropic", 1)).await.unwrap();
    let loaded = prices
        .get_or_load("gpt-4o", || async { Some(price("gpt-4o", "openai", 2)) })
        .await
        .unwrap();
    assert!(loaded.is_some());
    let tag = cache_core::tag("provider", "openai");
    env.cache.invalidate_tag(&tag).await.unwrap();
    assert_eq!(prices.get("gpt-4").await.unwrap(), None);
    assert_eq!(prices.get("gpt-4o").await.unwrap(), None);
    assert!(prices.get("claude").await.unwrap().is_some());
    env.cache
        .invalidate_tag(&cache_core::tag("region", &1u32))
        .await
        .unwrap();
    assert_eq!(prices.get("claude").await.unwrap(), None);

    // A loader's own tags, besides the value's.
    let runs = Arc::new(AtomicUsize::new(0));
    let load = |runs: &Arc<AtomicUsize>| {
        let runs = Arc::clone(runs);
        move || async move {
            runs.fetch_add(1, Ordering::SeqCst);
            let tags = vec!["catalog:2025".to_owned()];
            Ok::<_, std::io::Error>(Some((price("o3", "openai", 3), tags)))
        }
    };
    prices.get_or_load_tagged("o3", load(&runs)).await.unwrap();
    prices.get_or_load_tagged("o3", load(&runs)).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1, "stored, then a hit");
    env.cache.invalidate_tag("catalog:2025").await.unwrap();
    prices.get_or_load_tagged("o3", load(&runs)).await.unwrap();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "invalidated by the loader's tag"
    );
}

async fn a_load_that_began_before_an_invalidation_is_answered_but_not_stored(env: Env) {
    let pages = pages(&env.cache, "page");
    let started = Arc::new(tokio::sync::Notify::new());
    let go_on = Arc::new(tokio::sync::Notify::new());
    let load = {
        let (pages, started, go_on) = (pages.clone(), Arc::clone(&started), Arc::clone(&go_on));
        tokio::spawn(async move {
            let loader = move || async move {
                started.notify_one();
                go_on.notified().await;
                // Read before the invalidation; stored after it.
                Ok::<_, std::io::Error>(Some((text("old"), vec!["tenant:acme".to_owned()])))
            };
            pages.get_or_load_tagged("/", loader).await
        })
    };
    started.notified().await;
    env.cache.invalidate_tag("tenant:acme").await.unwrap();
    go_on.notify_one();
    let answered = load.await.unwrap().unwrap();
    assert_eq!(
        answered.as_deref(),
        Some("old"),
        "the caller gets what it loaded"
    );
    assert_eq!(
        pages.get("/").await.unwrap(),
        None,
        "but it is not stored as fresh"
    );
    assert_eq!(env.cache.stats().unstored_values, 1);
    // The next load, after the invalidation, is stored.
    let loader =
        || async { Ok::<_, std::io::Error>(Some((text("new"), vec!["tenant:acme".to_owned()]))) };
    pages.get_or_load_tagged("/", loader).await.unwrap();
    assert_eq!(pages.get("/").await.unwrap().as_deref(), Some("new"));
}

async fn a_lost_tag_state_reads_as_invalidated(env: Env) {
    let pages = pages(&env.cache, "page");
    pages
        .set_tagged("/", &text("home"), &["tenant:acme"])
        .await
        .unwrap();
    assert!(pages.get("/").await.unwrap().is_some());
    let state = cache_tests::tag_state_key(&env.cache, "tenant:acme");
    assert!(
        env.cache.raw_get(&state).await.unwrap().is_some(),
        "{state}"
    );
    // Lost: on Redis deleted as an eviction would; on memory overwritten.
    match env.cache.redis_connection() {
        Some(mut redis) => {
            let deleted: u64 = redis::cmd("DEL")
                .arg(&state)
                .query_async(&mut redis)
                .await
                .unwrap();
            assert_eq!(deleted, 1);
        }
        None => env.write_raw(&state, b"garbage").await,
    }
    // Another client's change: this handle's state cache hears of it within
    // the local tier's coherence bound (at once on memory).
    let lost = std::time::Instant::now();
    while pages.get("/").await.unwrap().is_some() {
        let after = lost.elapsed();
        assert!(after < Duration::from_millis(300), "served {after:?} after");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // A new write makes a new state, and is served.
    pages
        .set_tagged("/", &text("home2"), &["tenant:acme"])
        .await
        .unwrap();
    assert_eq!(pages.get("/").await.unwrap().as_deref(), Some("home2"));
}

async fn fail_safe_answers_an_invalidated_entry_when_the_reload_fails(env: Env) {
    let policy = LoadPolicy::DEFAULT.fail_safe(Duration::from_secs(60));
    let pages = env
        .cache
        .keyspace("page")
        .ttl(Duration::from_secs(60))
        .tagged();
    let pages = pages.load_policy(policy).typed::<String, String>().unwrap();
    pages
        .set_tagged("/", &text("home"), &["tenant:acme"])
        .await
        .unwrap();
    env.cache.invalidate_tag("tenant:acme").await.unwrap();
    assert_eq!(pages.get("/").await.unwrap(), None);
    let loaded = pages
        .try_get_or_load_detailed("/", || async { Err::<Option<String>, _>("database down") })
        .await
        .unwrap();
    assert_eq!(loaded.value.as_deref(), Some("home"));
    assert_eq!(loaded.freshness, Freshness::Stale(StaleReason::LoaderError));
    assert_eq!(env.cache.stats().stale_loader_errors, 1);
}

async fn tags_need_a_tagged_keyspace(env: Env) {
    let plain = env.cache.keyspace("plain").typed::<String, u64>().unwrap();
    let err = plain.set_tagged("a", &1, &["t"]).await.unwrap_err();
    assert!(
        err.is_config() && err.to_string().contains("`plain` is not tagged"),
        "{err}"
    );
    assert!(plain.invalidate_all().await.unwrap_err().is_config());
    let loader = || async { Ok::<_, std::io::Error>(Some((1, vec![]))) };
    assert!(
        plain
            .get_or_load_tagged("a", loader)
            .await
            .unwrap_err()
            .is_config()
    );
    let counters = env
        .cache
        .keyspace("hits")
        .tagged()
        .typed::<String, u64>()
        .unwrap();
    let err = counters.incr("home", 1).await.unwrap_err();
    assert!(err.is_config() && err.to_string().contains("tags"), "{err}");
    assert!(
        env.cache
            .invalidate_tags(&[])
            .await
            .unwrap_err()
            .is_config()
    );
}
