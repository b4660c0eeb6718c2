//! What every example shares: a primary behind Redis Sentinel when
//! `REDIS_SENTINELS` (comma-separated sentinel URLs) and
//! `REDIS_SENTINEL_MASTER` (the master's name) are set, a Redis Cluster when
//! `REDIS_CLUSTER_NODES` is set (comma-separated node URLs), one Redis server
//! when `REDIS_URL` is set, otherwise the embedded memory backend. A variable
//! set but empty is an error that names it.

use cache_core::Cache;

/// A cache under `namespace` on the backend the environment names.
#[allow(dead_code)] // The bench connects its own way.
pub(crate) async fn connect(namespace: &str) -> cache_core::Result<Cache> {
    // Set but empty is a mistake, not "use the memory backend" (as in
    // `CacheBuilder::from_env`).
    let names = [
        "REDIS_URL",
        "REDIS_CLUSTER_NODES",
        "REDIS_SENTINELS",
        "REDIS_SENTINEL_MASTER",
    ];
    for name in names {
        if std::env::var(name).is_ok_and(|value| value.trim().is_empty()) {
            return Err(cache_core::Error::config(format!(
                "{name} is set but empty: give it a value, or unset it"
            )));
        }
    }
    let builder = Cache::builder().namespace(namespace);
    if let Some((master, sentinels)) = sentinels() {
        println!(
            "backend: Redis Sentinel master {master} at {}",
            cache_core::redact::nodes(&sentinels)
        );
        return builder.sentinel(master, sentinels).build().await;
    }
    if let Some(nodes) = cluster_nodes() {
        println!(
            "backend: Redis Cluster at {}",
            cache_core::redact::nodes(&nodes)
        );
        return builder.cluster_nodes(nodes).build().await;
    }
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            println!("backend: Redis at {}", cache_core::redact::url(&url));
            builder.url(url).build().await
        }
        _ => {
            println!(
                "backend: embedded memory (set REDIS_URL or REDIS_CLUSTER_NODES to use Redis)"
            );
            builder.build_memory()
        }
    }
}

/// The node URLs in `REDIS_CLUSTER_NODES`, if it names any.
#[allow(dead_code)] // Not every example that includes this module asks directly.
pub(crate) fn cluster_nodes() -> Option<Vec<String>> {
    url_list("REDIS_CLUSTER_NODES")
}

/// `REDIS_SENTINEL_MASTER` and the sentinel URLs in `REDIS_SENTINELS`, when
/// both are set.
#[allow(dead_code)] // Not every example that includes this module asks directly.
pub(crate) fn sentinels() -> Option<(String, Vec<String>)> {
    let master = std::env::var("REDIS_SENTINEL_MASTER").ok()?;
    let master = master.trim();
    (!master.is_empty()).then_some(())?;
    Some((master.to_owned(), url_list("REDIS_SENTINELS")?))
}

/// The comma-separated URLs in the variable `var`, if it names any.
fn url_list(var: &str) -> Option<Vec<String>> {
    let nodes: Vec<String> = std::env::var(var)
        .ok()?
        .split(',')
        .map(str::trim)
        .filter(|node| !node.is_empty())
        .map(str::to_owned)
        .collect();
    (!nodes.is_empty()).then_some(nodes)
}

/// A second handle on the same data, as another instance of the service
/// would have: new connections on Redis; on the memory backend (one store
/// per handle) a clone of `cache`.
#[allow(dead_code)] // Not every example runs two instances.
pub(crate) async fn another_instance(cache: &Cache, namespace: &str) -> cache_core::Result<Cache> {
    if cache.redis_connection().is_none() {
        return Ok(cache.clone());
    }
    connect(namespace).await
}
