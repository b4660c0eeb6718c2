//! `CacheBuilder::from_env`, alone in its test binary (one test function):
//! setting an environment variable is only sound while no other thread reads
//! the environment.

use cache_core::Cache;
use cache_tests::RedisServer;
use redis::AsyncCommands;

#[test]
fn from_env_reads_the_named_variable() {
    let redis = RedisServer::start("from-env");
    #[allow(unsafe_code)]
    // SAFETY: this binary's only test runs here, before any runtime thread exists.
    unsafe {
        std::env::set_var("BURNCLOUD_REDIS_URL", redis.url())
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let cache = Cache::builder()
            .from_env("BURNCLOUD_REDIS_URL")
            .namespace(redis.namespace())
            .build()
            .await
            .unwrap();
        let names = cache.keyspace("name").typed::<String, String>().unwrap();
        names.set("a", &"x".to_owned()).await.unwrap();
        let mut raw = redis.raw().await;
        let exists: bool = raw.exists(names.key("a")).await.unwrap();
        assert!(exists, "the write reached the server named by the variable");
        set_but_empty_is_a_config_error_naming_the_variable().await;
    });
}

/// A variable that is set but empty (or blank) is a deployment mistake: a
/// config error that names it, never a quiet fall back to the default URL.
async fn set_but_empty_is_a_config_error_naming_the_variable() {
    for empty in ["", "  "] {
        #[allow(unsafe_code)]
        // SAFETY: still the only thread that touches the environment.
        unsafe {
            std::env::set_var("BURNCLOUD_REDIS_URL", empty)
        };
        let built = Cache::builder()
            .from_env("BURNCLOUD_REDIS_URL")
            .build()
            .await;
        let Err(err) = built else {
            panic!("an empty variable must not build");
        };
        assert!(err.is_config(), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("BURNCLOUD_REDIS_URL") && text.contains("empty"),
            "{text}"
        );
    }
}
