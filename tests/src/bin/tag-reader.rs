//! Another process for the tag tests: opens its own handle (`url URL NS` or
//! `nodes URL,URL,.. NS`) on the tagged keyspace `page` with a local tier,
//! keeps `k` and `other` in that tier, prints `ready`, then reads `k` until
//! it is gone (an invalidation of its tag, from another process) and prints
//! `gone`, then `other kept` if `other` is still a local hit (`other lost`
//! if not). Gives up after 10 s with `timeout`.

use std::time::{Duration, Instant};

use cache_core::{Cache, TypedCache};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [kind, target, namespace] = args.as_slice() else {
        eprintln!("usage: tag-reader url|nodes TARGET NAMESPACE");
        std::process::exit(2);
    };
    let builder = Cache::builder().namespace(namespace.as_str());
    let builder = match kind.as_str() {
        "nodes" => builder.cluster_nodes(target.split(',').map(str::to_owned)),
        _ => builder.url(target.as_str()),
    };
    let cache = match builder.build().await {
        Ok(cache) => cache,
        Err(err) => {
            println!("error {err}");
            std::process::exit(1);
        }
    };
    let pages = cache
        .keyspace("page")
        .ttl(Duration::from_secs(60))
        .tagged()
        .local(1_000, Duration::from_secs(60))
        .typed::<String, u64>();
    let Ok(pages) = pages else {
        println!("error keyspace");
        std::process::exit(1);
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    for key in ["k", "other"] {
        if !kept(&pages, key, deadline).await {
            println!("timeout");
            return;
        }
    }
    println!("ready");
    while pages.get("k").await.ok().flatten().is_some() {
        if Instant::now() > deadline {
            println!("timeout");
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    println!("gone");
    let before = pages.local_stats().map_or(0, |stats| stats.hits);
    let other = pages.get("other").await.ok().flatten();
    let after = pages.local_stats().map_or(0, |stats| stats.hits);
    match (other, after > before) {
        (Some(_), true) => println!("other kept"),
        _ => println!("other lost"),
    }
}

/// Reads `key` until the local tier answers it; false past `deadline`.
async fn kept(pages: &TypedCache<String, u64>, key: &str, deadline: Instant) -> bool {
    while Instant::now() < deadline {
        let before = pages.local_stats().map_or(0, |stats| stats.hits);
        let found = pages.get(key).await.ok().flatten();
        let after = pages.local_stats().map_or(0, |stats| stats.hits);
        if found.is_some() && after > before {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}
