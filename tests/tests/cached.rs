//! `#[cached]` on every backend: 1,000 concurrent cold calls run the body
//! once; errors are never cached and each caller that ran the body gets its
//! own error back; `None` is cached only with a `negative_ttl`; the key
//! layout is a typed keyspace's (a value written through one is read through
//! the other); methods with `&self`, borrowed arguments and generic return
//! types; one call's entry invalidated through the generated helper; batch
//! functions load only the missing keys; call tags; the local tier; and a
//! plain function is answered uncached when the cache cannot answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_core::{Cache, cached};
use cache_tests::Env;
use serde::{Deserialize, Serialize};

cache_tests::backend_suite!(
    a_thousand_cold_calls_run_the_body_once,
    distributed_runs_the_body_once_across_four_handles,
    errors_are_not_cached_and_the_caller_gets_its_own,
    none_is_cached_only_with_a_negative_ttl,
    the_key_layout_is_a_typed_keyspaces,
    borrowed_arguments_and_generic_return_types,
    one_calls_entry_is_invalidated_by_the_helper,
    a_batch_loads_only_the_missing_keys,
    call_tags_invalidate_their_entries,
    a_local_tier_serves_repeated_calls,
    a_plain_function_is_answered_uncached_when_the_cache_cannot,
    codec_version_and_fail_safe_apply,
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    tenant: String,
    id: u64,
    name: String,
}

/// The error a cached lookup returns: its own, or the cache's.
#[derive(Debug)]
enum LookupError {
    Db(String),
    Cache(cache_core::Error),
}

impl std::fmt::Display for LookupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LookupError::Db(message) => write!(f, "database: {message}"),
            LookupError::Cache(error) => write!(f, "cache: {error}"),
        }
    }
}

impl From<cache_core::Error> for LookupError {
    fn from(error: cache_core::Error) -> Self {
        LookupError::Cache(error)
    }
}

/// A service as users write them: a cache handle and a counter of body runs
/// (standing for database reads), cloned into each load.
#[derive(Clone)]
struct Users {
    cache: Cache,
    runs: Arc<AtomicUsize>,
    /// Makes the bodies that look at it fail, as a database outage would.
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl Users {
    fn new(cache: &Cache) -> Self {
        Users {
            cache: cache.clone(),
            runs: Arc::default(),
            down: Arc::default(),
        }
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    #[cached(cache = self.cache, prefix = "user", ttl = "5m", key = (tenant, id))]
    async fn user(&self, tenant: &str, id: u64) -> Result<Option<User>, LookupError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        if id == 0 {
            return Err(LookupError::Db(format!("no row 0 for {tenant}")));
        }
        let name = format!("user {id}");
        Ok((id < 1_000).then(|| User {
            tenant: tenant.to_owned(),
            id,
            name,
        }))
    }

    #[cached(
        cache = self.cache,
        prefix = "report",
        ttl = "5m",
        distributed(lease = "5s", wait = "5s")
    )]
    async fn report(&self, id: u64) -> Result<String, LookupError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(format!("report {id}"))
    }

    #[cached(cache = self.cache, ttl = "5m")]
    async fn display_name(&self, id: u64) -> Result<String, LookupError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        match id {
            0 => Err(LookupError::Db("down".to_owned())),
            id => Ok(format!("#{id}")),
        }
    }

    #[cached(cache = self.cache, ttl = "5m")]
    async fn nickname(&self, id: u64) -> Option<String> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        id.is_multiple_of(2).then(|| format!("nick {id}"))
    }

    #[cached(cache = self.cache, ttl = "5m", negative_ttl = "1m")]
    async fn nickname_or_none(&self, id: u64) -> Option<String> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        id.is_multiple_of(2).then(|| format!("nick {id}"))
    }

    #[cached(cache = self.cache, prefix = "profile", ttl = "5m")]
    async fn profile<T>(&self, handle: &str) -> Option<T>
    where
        T: Serialize + for<'de> Deserialize<'de> + From<String> + Send + 'static,
    {
        self.runs.fetch_add(1, Ordering::SeqCst);
        Some(T::from(handle.to_uppercase()))
    }

    #[cached(cache = self.cache, prefix = "name", ttl = "5m", batch)]
    async fn names(&self, ids: &[u64]) -> HashMap<u64, String> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        // Odd ids have no name.
        ids.iter()
            .filter(|id| id.is_multiple_of(2))
            .map(|id| (*id, format!("name {id}")))
            .collect()
    }

    #[cached(cache = self.cache, prefix = "page", ttl = "5m", tags(tenant))]
    async fn page(&self, tenant: &str, path: &str) -> String {
        self.runs.fetch_add(1, Ordering::SeqCst);
        format!("{tenant}{path}")
    }

    #[cached(cache = self.cache, prefix = "quote", ttl = "300ms", fail_safe = "1h")]
    async fn quote(&self, id: u64) -> Result<u64, LookupError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        match self.down.load(Ordering::SeqCst) {
            true => Err(LookupError::Db("down".to_owned())),
            false => Ok(id * 100),
        }
    }

    #[cached(cache = self.cache, prefix = "packed", version = 3, codec = "msgpack")]
    async fn packed(&self, id: u64) -> Vec<u64> {
        vec![id; 3]
    }

    #[cached(cache = self.cache, ttl = "5m", local(capacity = 100, ttl = "1m"))]
    async fn hot(&self, id: u64) -> u64 {
        self.runs.fetch_add(1, Ordering::SeqCst);
        id * 10
    }
}

async fn a_thousand_cold_calls_run_the_body_once(env: Env) {
    let users = Users::new(&env.cache);
    let calls: Vec<_> = (0..1_000)
        .map(|_| {
            let users = users.clone();
            tokio::spawn(async move { users.user("acme", 7).await })
        })
        .collect();
    for call in calls {
        let user = call.await.unwrap().unwrap().unwrap();
        assert_eq!((user.tenant.as_str(), user.id), ("acme", 7));
    }
    assert_eq!(users.runs(), 1, "one load for 1,000 concurrent cold calls");
    assert_eq!(env.cache.stats().loads, 1);
}

/// Four handles (four connections, as four processes would have; clones of
/// one handle on the memory backend), 250 cold calls each.
async fn distributed_runs_the_body_once_across_four_handles(env: Env) {
    let mut handles = vec![env.cache.clone()];
    for _ in 1..4 {
        handles.push(match env.another_handle() {
            Some(builder) => builder.build().await.unwrap(),
            None => env.cache.clone(),
        });
    }
    let runs = Arc::new(AtomicUsize::new(0));
    let mut calls = Vec::new();
    for call in 0..1_000 {
        let users = Users {
            cache: handles[call % 4].clone(),
            runs: Arc::clone(&runs),
            down: Arc::default(),
        };
        calls.push(tokio::spawn(async move { users.report(9).await }));
    }
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), "report 9");
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "one load across four handles"
    );
}

async fn errors_are_not_cached_and_the_caller_gets_its_own(env: Env) {
    let users = Users::new(&env.cache);
    for round in 1..=3 {
        match users.display_name(0).await {
            Err(LookupError::Db(message)) => assert_eq!(message, "down"),
            other => panic!("expected the body's own error, got {other:?}"),
        }
        assert_eq!(users.runs(), round, "an error is never cached");
    }
    match users.user("acme", 0).await {
        Err(LookupError::Db(message)) => assert_eq!(message, "no row 0 for acme"),
        other => panic!("expected the body's own error, got {other:?}"),
    }
    assert_eq!(users.display_name(5).await.unwrap(), "#5");
    assert_eq!(users.display_name(5).await.unwrap(), "#5");
    assert_eq!(users.runs(), 5, "a value is cached");
}

async fn none_is_cached_only_with_a_negative_ttl(env: Env) {
    let users = Users::new(&env.cache);
    assert_eq!(users.nickname(1).await, None);
    assert_eq!(users.nickname(1).await, None);
    assert_eq!(users.runs(), 2, "no negative_ttl: None is not cached");
    assert_eq!(users.nickname_or_none(1).await, None);
    assert_eq!(users.nickname_or_none(1).await, None);
    assert_eq!(users.runs(), 3, "negative_ttl: None is cached");
    assert_eq!(users.nickname(2).await.as_deref(), Some("nick 2"));
    assert_eq!(users.nickname(2).await.as_deref(), Some("nick 2"));
    assert_eq!(users.runs(), 4);
    // Result<Option<T>, E> without negative_ttl: Ok(None) is not cached.
    assert_eq!(users.user("acme", 5_000).await.unwrap(), None);
    assert_eq!(users.user("acme", 5_000).await.unwrap(), None);
    assert_eq!(users.runs(), 6);
}

async fn the_key_layout_is_a_typed_keyspaces(env: Env) {
    let users = Users::new(&env.cache);
    let typed = (env.cache.keyspace("user"))
        .ttl(Duration::from_secs(300))
        .typed::<(String, u64), User>()
        .unwrap();
    let tenant = "a:b c".to_owned();
    assert_eq!(users.user_key(&tenant, 3), typed.key(&(tenant.clone(), 3)));
    let written = User {
        tenant: tenant.clone(),
        id: 3,
        name: "written by the typed view".to_owned(),
    };
    typed.set(&(tenant.clone(), 3), &written).await.unwrap();
    assert_eq!(users.user(&tenant, 3).await.unwrap(), Some(written));
    assert_eq!(users.runs(), 0, "read through the function, not run");
    let loaded = users.user(&tenant, 4).await.unwrap();
    assert_eq!(typed.get(&(tenant.clone(), 4)).await.unwrap(), loaded);
    assert!(loaded.is_some());
    let bare = (env.cache.keyspace("display_name"))
        .typed::<u64, String>()
        .unwrap();
    assert_eq!(users.display_name_key(9), bare.key(&9), "default prefix");
}

async fn borrowed_arguments_and_generic_return_types(env: Env) {
    let users = Users::new(&env.cache);
    let handle = String::from("ada");
    let first: Option<String> = users.profile(&handle).await;
    drop(handle);
    let again: Option<String> = users.profile("ada").await;
    assert_eq!(
        (first.as_deref(), again.as_deref()),
        (Some("ADA"), Some("ADA"))
    );
    assert_eq!(users.runs(), 1);
    let owned = String::from("ada");
    assert_eq!(users.profile_key("ada"), users.profile_key(&owned));
}

async fn one_calls_entry_is_invalidated_by_the_helper(env: Env) {
    let users = Users::new(&env.cache);
    users.user("acme", 1).await.unwrap();
    users.user("acme", 2).await.unwrap();
    assert!(users.user_invalidate("acme", 1).await.unwrap());
    assert!(!users.user_invalidate("acme", 1).await.unwrap(), "gone");
    users.user("acme", 1).await.unwrap();
    users.user("acme", 2).await.unwrap();
    assert_eq!(users.runs(), 3, "only the invalidated call ran again");
}

async fn a_batch_loads_only_the_missing_keys(env: Env) {
    let users = Users::new(&env.cache);
    let got = users.names(&[1, 2, 4]).await;
    assert_eq!(
        got,
        HashMap::from([(2, "name 2".into()), (4, "name 4".into())])
    );
    let names = (env.cache.keyspace("name")).typed::<u64, String>().unwrap();
    names.set(&6, &"set by hand".to_owned()).await.unwrap();
    let got = users.names(&[2, 6, 8]).await;
    assert_eq!(got.get(&6).map(String::as_str), Some("set by hand"));
    assert_eq!(got.get(&8).map(String::as_str), Some("name 8"));
    assert_eq!(users.runs(), 2, "one body run per batch with misses");
    assert_eq!(users.names_key(&8), names.key(&8));
    assert!(users.names_invalidate(&8).await.unwrap());
    assert_eq!(names.get(&8).await.unwrap(), None);
    users.names(&[2, 4, 6]).await;
    assert_eq!(users.runs(), 2, "every key was cached");
}

async fn call_tags_invalidate_their_entries(env: Env) {
    let users = Users::new(&env.cache);
    users.page("acme", "/a").await;
    users.page("globex", "/a").await;
    env.cache
        .invalidate_tag(&cache_core::tag("tenant", "acme"))
        .await
        .unwrap();
    assert_eq!(users.page("acme", "/a").await, "acme/a");
    assert_eq!(users.page("globex", "/a").await, "globex/a");
    assert_eq!(users.runs(), 3, "only the invalidated tenant ran again");
}

async fn a_local_tier_serves_repeated_calls(env: Env) {
    let users = Users::new(&env.cache);
    let probe = (env.cache.keyspace("hot"))
        .ttl(Duration::from_secs(300))
        .local(100, Duration::from_secs(60))
        .typed::<u64, u64>()
        .unwrap();
    cache_tests::local_tier_live(|| probe.local_is_live()).await;
    assert_eq!(users.hot(3).await, 30);
    for _ in 0..10 {
        assert_eq!(users.hot(3).await, 30);
    }
    // The first reads after the load may still go to Redis while the
    // write-back's own invalidation comes back (cluster); the rest are local.
    let stats = env.cache.keyspace_stats("hot").unwrap();
    assert!(stats.local_hits >= 5, "{stats:?}");
    assert_eq!(users.runs(), 1);
}

/// A plain function cannot return an error: when the load fails (here its
/// first run panics), the body runs again in the caller's task.
#[cached(cache = cache, prefix = "flaky", ttl = "5m", key = id)]
async fn flaky(cache: &Cache, runs: Arc<AtomicUsize>, id: u64) -> u64 {
    if runs.fetch_add(1, Ordering::SeqCst) == 0 {
        panic!("the first run fails");
    }
    id + 1
}

async fn a_plain_function_is_answered_uncached_when_the_cache_cannot(env: Env) {
    let runs = Arc::new(AtomicUsize::new(0));
    assert_eq!(flaky(&env.cache, Arc::clone(&runs), 1).await, 2);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "failed load, then run uncached"
    );
    assert_eq!(env.cache.stats().load_errors, 1);
    // The uncached run stored nothing; the next call loads and stores.
    assert_eq!(flaky(&env.cache, Arc::clone(&runs), 1).await, 2);
    assert_eq!(flaky(&env.cache, Arc::clone(&runs), 1).await, 2);
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

async fn codec_version_and_fail_safe_apply(env: Env) {
    let users = Users::new(&env.cache);
    assert_eq!(users.packed(4).await, [4, 4, 4]);
    let packed = (env.cache.keyspace("packed"))
        .version(3)
        .codec(cache_core::Codec::MsgPack)
        .typed::<u64, Vec<u64>>()
        .unwrap();
    assert_eq!(users.packed_key(4), packed.key(&4));
    assert_eq!(packed.get(&4).await.unwrap(), Some(vec![4, 4, 4]));

    assert_eq!(users.quote(2).await.unwrap(), 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    users.down.store(true, Ordering::SeqCst);
    let stale = users.quote(2).await;
    assert_eq!(
        stale.unwrap(),
        200,
        "the expired value answers a failed load"
    );
    assert_eq!(users.runs(), 2, "the load was tried");
    assert_eq!(env.cache.stats().stale_loader_errors, 1);
}
