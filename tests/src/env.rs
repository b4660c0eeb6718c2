//! One backend under test (`Env`) and the macros that run a suite of
//! `async fn(Env)` on every backend: memory, a spawned server, the shared
//! cluster, and behind Sentinel.

use std::time::Duration;

use cache_core::Cache;

use crate::{RedisCluster, RedisSentinel, RedisServer, unique_namespace};

/// One backend under test; the Redis server lives as long as the test.
pub struct Env {
    /// The cache under test.
    pub cache: Cache,
    /// The spawned server, on the Redis backend.
    pub redis: Option<RedisServer>,
    /// The shared cluster, on the cluster backend.
    pub cluster: Option<&'static RedisCluster>,
}

impl Env {
    /// The memory backend, under a namespace of its own.
    pub fn memory(test: &str) -> Self {
        let cache = Cache::builder()
            .namespace(unique_namespace(test))
            .build_memory()
            .unwrap_or_else(|err| panic!("memory cache: {err}"));
        Env {
            cache,
            redis: None,
            cluster: None,
        }
    }

    /// A spawned redis-server.
    pub async fn redis(test: &str) -> Self {
        let redis = RedisServer::start(test);
        let cache = redis.cache().await;
        Env {
            cache,
            redis: Some(redis),
            cluster: None,
        }
    }

    /// A spawned redis-server, through a handle with coalescing off.
    pub async fn redis_uncoalesced(test: &str) -> Self {
        let redis = RedisServer::start(test);
        let builder = Cache::builder()
            .url(redis.url())
            .namespace(redis.namespace());
        let cache = uncoalesced(builder).await;
        Env {
            cache,
            redis: Some(redis),
            cluster: None,
        }
    }

    /// The shared cluster, through a handle with coalescing off.
    pub async fn cluster_uncoalesced(test: &str) -> Self {
        let cluster = RedisCluster::shared();
        let builder = Cache::builder()
            .cluster_nodes(cluster.urls())
            .namespace(unique_namespace(test));
        let cache = uncoalesced(builder).await;
        Env {
            cache,
            redis: None,
            cluster: Some(cluster),
        }
    }

    /// The local 6-node cluster shared by this test binary, under a
    /// namespace of its own.
    pub async fn cluster(test: &str) -> Self {
        let cluster = RedisCluster::shared();
        let cache = cluster.cache(test, Duration::from_secs(2)).await;
        Env {
            cache,
            redis: None,
            cluster: Some(cluster),
        }
    }

    /// A handle behind `deployment`'s sentinels, under a namespace of its own.
    pub async fn sentinel(deployment: &RedisSentinel, test: &str) -> Self {
        let builder = deployment.builder().namespace(unique_namespace(test));
        let built = builder.timeout(Duration::from_secs(2)).build().await;
        let cache = built.unwrap_or_else(|err| panic!("cannot connect behind Sentinel: {err}"));
        Env {
            cache,
            redis: None,
            cluster: None,
        }
    }

    /// A builder for another handle on the same store and namespace (a
    /// second connection); `None` on the memory backend and behind Sentinel.
    pub fn another_handle(&self) -> Option<cache_core::CacheBuilder> {
        let namespace = self.cache.namespace().unwrap_or_default().to_owned();
        let builder = Cache::builder().namespace(namespace);
        match (&self.redis, self.cluster) {
            (Some(redis), _) => Some(builder.url(redis.url())),
            (None, Some(cluster)) => Some(builder.cluster_nodes(cluster.urls())),
            (None, None) => None,
        }
    }

    /// Writes raw bytes under a full key, as a foreign writer (or another
    /// process) would.
    pub async fn write_raw(&self, full_key: &str, bytes: &[u8]) {
        if let Err(err) = self.cache.raw_set(full_key, bytes, None).await {
            panic!("raw write of {full_key}: {err}");
        }
    }
}

async fn uncoalesced(builder: cache_core::CacheBuilder) -> Cache {
    let built = builder
        .timeout(Duration::from_secs(2))
        .coalesce(false)
        .build()
        .await;
    built.unwrap_or_else(|err| panic!("cannot connect to the test store: {err}"))
}

/// Runs each named `async fn(Env)` once on the memory backend (module
/// `memory`), once on a spawned Redis (module `redis_server`) and once on the
/// shared local cluster (module `cluster`). Prefixed with `coalesce_off_too;`,
/// also on both through a handle with coalescing off (modules
/// `redis_server_uncoalesced` and `cluster_uncoalesced`); with
/// `sentinel_too;`, also behind Sentinel (see [`sentinel_suite!`](crate::sentinel_suite)).
#[macro_export]
macro_rules! backend_suite {
    (sentinel_too; $($name:ident),* $(,)?) => {
        $crate::backend_suite!($($name),*);
        $crate::sentinel_suite!($($name),*);
    };
    (coalesce_off_too; $($name:ident),* $(,)?) => {
        $crate::backend_suite!($($name),*);
        mod redis_server_uncoalesced {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let env = $crate::Env::redis_uncoalesced(stringify!($name)).await;
                    super::$name(env).await;
                }
            )*
        }
        mod cluster_uncoalesced {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let env = $crate::Env::cluster_uncoalesced(stringify!($name)).await;
                    super::$name(env).await;
                }
            )*
        }
    };
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Env::memory(stringify!($name))).await;
                }
            )*
        }
        $crate::redis_suite!($($name),*);
    };
}

/// Runs each named `async fn(Env)` on a spawned Redis (module
/// `redis_server`) and on the shared local cluster (module `cluster`): for
/// behaviour that needs other handles on the same server.
#[macro_export]
macro_rules! redis_suite {
    ($($name:ident),* $(,)?) => {
        mod redis_server {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Env::redis(stringify!($name)).await).await;
                }
            )*
        }
        mod cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Env::cluster(stringify!($name)).await).await;
                }
            )*
        }
    };
}

/// Runs the named `async fn(Env)`s one after another behind one local
/// Sentinel deployment (module `sentinel`), each under a namespace of its
/// own: one deployment for all, since each is six processes.
#[macro_export]
macro_rules! sentinel_suite {
    ($($name:ident),* $(,)?) => {
        mod sentinel {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn every_test_behind_one_deployment() {
                let deployment = $crate::RedisSentinel::start("sentinel-suite").await;
                $(
                    let env = $crate::Env::sentinel(&deployment, stringify!($name)).await;
                    super::$name(env).await;
                )*
            }
        }
    };
}
