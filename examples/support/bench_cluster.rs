//! The bench's cluster cases: the typed layer against raw redis-rs
//! `ClusterConnection` at 64 tasks (SET EX then GET, as the standalone
//! cases), and `get_many` of 100 keys spread over slots against 100
//! sequential gets, and GET only at 64 tasks on stored keys (where the
//! typed layer coalesces), and SET+GET written by hand (redis-rs and
//! serde_json). Interleaved rounds, medians, ratios in one run.

use std::sync::Arc;
use std::time::Duration;

use cache_core::{Cache, TypedCache};
use redis::cluster_async::ClusterConnection;

use super::{
    BenchResult, ModelPrice, TTL_SECS, hand_set_get, median, raw_get, raw_set_get, run_tasks,
    sample_price,
};

const CASES: [&str; 7] = [
    "cluster_raw_c64",
    "cluster_typed_c64",
    "cluster_get_many_100",
    "cluster_sequential_get_100",
    "cluster_raw_get_c64",
    "cluster_typed_get_c64",
    "cluster_hand_c64",
];

struct Fixture {
    raw: ClusterConnection,
    raw_value: Vec<u8>,
    price: ModelPrice,
    typed: TypedCache<String, ModelPrice>,
    batch_keys: Vec<String>,
    /// 100 keys stored by raw redis-rs, for `cluster_raw_get_c64`.
    raw_get_keys: Vec<String>,
}

async fn step(case: &str, fx: &Fixture, task: usize, i: usize) -> BenchResult<u64> {
    let slot = i % 100;
    match case {
        "cluster_raw_c64" => {
            let key = format!("bench-raw:{task}:{slot}");
            raw_set_get(&mut fx.raw.clone(), &key, &fx.raw_value).await
        }
        "cluster_typed_c64" => {
            let key = format!("{task}:{slot}");
            fx.typed.set(&key, &fx.price).await?;
            let _ = fx.typed.get(&key).await?;
            Ok(2)
        }
        "cluster_hand_c64" => {
            let key = format!("bench-hand:{task}:{slot}");
            hand_set_get(&mut fx.raw.clone(), &key, &fx.price).await
        }
        "cluster_raw_get_c64" => raw_get(&mut fx.raw.clone(), &fx.raw_get_keys[slot]).await,
        "cluster_typed_get_c64" => {
            let _ = fx.typed.get(&fx.batch_keys[slot]).await?;
            Ok(1)
        }
        "cluster_get_many_100" => {
            let keys: Vec<&str> = fx.batch_keys.iter().map(String::as_str).collect();
            Ok(fx.typed.get_many(&keys).await?.len() as u64)
        }
        _ => {
            for key in &fx.batch_keys {
                let _ = fx.typed.get(key).await?;
            }
            Ok(fx.batch_keys.len() as u64)
        }
    }
}

async fn measure(case: &'static str, fx: &Arc<Fixture>, duration: Duration) -> BenchResult<f64> {
    let tasks = if case.ends_with("c64") { 64 } else { 1 };
    let fx = Arc::clone(fx);
    let step = move |task, i| {
        let fx = Arc::clone(&fx);
        async move { step(case, &fx, task, i).await }
    };
    run_tasks(tasks, duration, step).await
}

impl Fixture {
    /// Connects the raw cluster connection and writes every key the cases read.
    async fn new(nodes: &[String], cache: &Cache) -> BenchResult<Self> {
        let client = redis::cluster::ClusterClient::new(nodes.iter().map(String::as_str))?;
        let mut raw = client.get_async_connection().await?;
        let price = sample_price();
        let typed = cache.typed::<ModelPrice>()?;
        let batch_keys: Vec<String> = (0..100).map(|i| format!("batch-{i}")).collect();
        for key in &batch_keys {
            typed.set(key, &price).await?;
        }
        let raw_get_keys: Vec<String> = (0..100).map(|i| format!("bench-get:{i}")).collect();
        for key in &raw_get_keys {
            let value = cache_core::Codec::Json.encode(&price)?;
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .query_async::<()>(&mut raw)
                .await?;
        }
        Ok(Fixture {
            raw_get_keys,
            raw,
            raw_value: cache_core::Codec::Json.encode(&price)?,
            price,
            typed,
            batch_keys,
        })
    }
}

/// Runs the cluster cases on the cluster at `nodes` and prints the ratios.
pub(crate) async fn run(
    nodes: &[String],
    rounds: usize,
    per_case: Duration,
    json: Option<&str>,
) -> BenchResult<()> {
    let cache = Cache::builder()
        .cluster_nodes(nodes.to_vec())
        .namespace("bench")
        .timeout(Duration::from_secs(5))
        .build()
        .await?;
    let fx = Arc::new(Fixture::new(nodes, &cache).await?);
    println!(
        "redis cluster at {} (ttl {TTL_SECS} s); {rounds} rounds x {per_case:?} per case, interleaved",
        cache_core::redact::nodes(nodes)
    );
    let meter = super::quiet::Meter::start(node_pids(nodes).await);
    for case in CASES {
        measure(case, &fx, Duration::from_millis(100)).await?;
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); CASES.len()];
    for round in 1..=rounds {
        for (i, case) in CASES.into_iter().enumerate() {
            samples[i].push(measure(case, &fx, per_case).await?);
        }
        eprintln!("round {round} of {rounds} done");
    }
    let medians: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
    let typed_ratio = medians[1] / medians[0];
    let batch_ratio = medians[2] / medians[3];
    let get_ratio = medians[5] / medians[4];
    let hand_ratio = medians[1] / medians[6];
    println!("\n{:<28} {:>12}", "case", "ops/s");
    for (case, value) in CASES.iter().zip(&medians) {
        println!("{case:<28} {value:>12.0}");
    }
    let quiet = meter.as_ref().and_then(super::quiet::Meter::finish);
    if let Some(quiet) = &quiet {
        quiet.report();
    }
    println!("\ncluster_typed_c64 / cluster_raw_c64: {typed_ratio:.3} (goal >= 0.9)");
    println!("cluster_typed_c64 / cluster_hand_c64: {hand_ratio:.3} (goal >= 1.0)");
    println!("cluster_get_many_100 / cluster_sequential_get_100 (keys/s): {batch_ratio:.3}");
    println!("cluster_typed_get_c64 / cluster_raw_get_c64: {get_ratio:.3} (goal >= 1.1)");
    if let Some(path) = json {
        let cases: Vec<serde_json::Value> = CASES
            .iter()
            .zip(&medians)
            .map(|(name, ops)| serde_json::json!({ "name": name, "ops_per_s": ops.round() }))
            .collect();
        let report = serde_json::json!({
            "cases": cases,
            "cluster_typed_vs_raw": typed_ratio,
            "cluster_get_many_vs_sequential": batch_ratio,
            "cluster_typed_get_vs_raw_get": get_ratio,
            "cluster_typed_vs_hand": hand_ratio,
            "other_cpu_percent": quiet.as_ref().map(|quiet| quiet.other_percent),
            "disturbed": quiet.as_ref().map(super::quiet::Quiet::disturbed),
        });
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        println!("\nwrote {path}");
    }
    Ok(())
}

/// The process ids of the nodes that run on this machine.
async fn node_pids(nodes: &[String]) -> Vec<u32> {
    let mut pids = Vec::new();
    for node in nodes {
        let Ok(client) = redis::Client::open(node.as_str()) else {
            continue;
        };
        if let Ok(mut connection) = client.get_multiplexed_async_connection().await
            && let Some(pid) = super::quiet::server_pid(&mut connection).await
        {
            pids.push(pid);
        }
    }
    pids
}
