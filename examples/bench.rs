//! Side-by-side throughput: the typed layer against raw redis-rs and fred,
//! against the `cached` crate's async Redis store, and the shared handle
//! against a connection per call. Cases run interleaved (A B C ... A B C ...)
//! for several rounds and each reports its median, so drift on the machine
//! hits all alike.
//!
//! ```text
//! cargo run --release --example bench                 # full run, about 7 minutes
//! cargo run --release --example bench -- --quick      # under a minute
//! cargo run --release --example bench -- --json out.json
//! cargo run --release --example bench -- --cases raw_c1,typed_json_c1
//! cargo run --release --example bench -- --svg bench.svg   # the ratios as a chart
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --release --example bench
//! ```
//!
//! Throughput is Redis commands per second: a SET EX + GET pair counts two,
//! an INCR one; the batch cases count keys read. The 16 KiB document cases
//! (SET+GET, plain and lz4) also report the stored size of one value
//! (`bytes_per_value`, read with `STRLEN`). The slow-loader cases
//! report the latency of `get_or_load` calls whose loader takes 500 ms, with
//! and without fail-safe. Without `REDIS_URL` a redis-server is spawned on a free port.
//! Behind Sentinel (`REDIS_SENTINELS` and `REDIS_SENTINEL_MASTER`), the cases
//! run against the primary the sentinels name, reached by its address (the
//! raw clients have no Sentinel support to compare with).

mod support;

#[path = "support/bench_allocs.rs"]
mod allocs;
#[path = "support/bench_cases.rs"]
mod cases;
#[path = "support/bench_chart.rs"]
mod chart;
#[path = "support/bench_cluster.rs"]
mod cluster;
#[path = "support/bench_fixture.rs"]
mod fixture;
#[path = "support/bench_large.rs"]
mod large;
#[path = "support/bench_peers.rs"]
mod peers;
#[path = "support/bench_quiet.rs"]
mod quiet;
#[path = "support/bench_report.rs"]
mod report;
#[path = "support/bench_slow_loader.rs"]
mod slow_loader;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_core::Cacheable;
use cached::{ConcurrentCachedAsync, SerializeCachedAsync};
use cases::Case;
use fixture::Fixture;
use peers::Fred;
use report::{json_report, print_targets, slow_loader_cases};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Cacheable)]
#[cache(prefix = "bench-price", ttl = "5m")]
struct ModelPrice {
    #[cache(key)]
    model: String,
    input_per_1k: f64,
    output_per_1k: f64,
}

fn sample_price() -> ModelPrice {
    // About 64 bytes as JSON.
    ModelPrice {
        model: "gpt-4o-mini-2024".into(),
        input_per_1k: 0.000_15,
        output_per_1k: 0.000_6,
    }
}

const TTL_SECS: u64 = 300;
const KEYS_PER_TASK: usize = 100;

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The URL of the primary the first answering sentinel names for `master`.
async fn primary_of(master: &str, sentinels: &[String]) -> BenchResult<String> {
    for sentinel in sentinels {
        let Ok(client) = redis::Client::open(sentinel.as_str()) else {
            continue;
        };
        let Ok(mut connection) = client.get_multiplexed_async_connection().await else {
            continue;
        };
        let mut ask = redis::cmd("SENTINEL");
        ask.arg("get-master-addr-by-name").arg(master);
        if let Ok(Some((host, port))) = ask
            .query_async::<Option<(String, u16)>>(&mut connection)
            .await
        {
            println!("behind Sentinel: the primary of {master} is {host}:{port}");
            return Ok(format!("redis://{host}:{port}"));
        }
    }
    let sentinels = cache_core::redact::nodes(sentinels);
    Err(format!("no sentinel of {sentinels} names a primary for {master}").into())
}

/// SET EX with the bench's TTL.
async fn set_ex(
    conn: &mut impl redis::aio::ConnectionLike,
    key: &str,
    value: &[u8],
) -> BenchResult<()> {
    let set = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .arg("EX")
        .arg(TTL_SECS)
        .take();
    set.query_async::<()>(conn).await?;
    Ok(())
}

/// SET EX of pre-encoded bytes, then GET: the raw workload.
async fn raw_set_get(
    conn: &mut impl redis::aio::ConnectionLike,
    key: &str,
    value: &[u8],
) -> BenchResult<u64> {
    set_ex(conn, key, value).await?;
    let _: Option<Vec<u8>> = redis::cmd("GET").arg(key).query_async(conn).await?;
    Ok(2)
}

/// The code a user writes without a library: redis-rs' multiplexed
/// connection and serde_json, SET EX of the encoded price, then GET and decode.
async fn hand_set_get(
    conn: &mut impl redis::aio::ConnectionLike,
    key: &str,
    price: &ModelPrice,
) -> BenchResult<u64> {
    set_ex(conn, key, &serde_json::to_vec(price)?).await?;
    let read: Option<Vec<u8>> = redis::cmd("GET").arg(key).query_async(conn).await?;
    if let Some(read) = read {
        let _: ModelPrice = serde_json::from_slice(&read)?;
    }
    Ok(2)
}

/// GET of a stored key: the raw read workload.
async fn raw_get(conn: &mut impl redis::aio::ConnectionLike, key: &str) -> BenchResult<u64> {
    let _: Option<Vec<u8>> = redis::cmd("GET").arg(key).query_async(conn).await?;
    Ok(1)
}

/// The loader of an all-hit batch: never called.
async fn no_load(_: Vec<String>) -> Vec<(String, ModelPrice)> {
    Vec::new()
}

/// One task's loop body: how many commands it issued in this step.
async fn step(case: Case, fx: &Fixture, task: usize, i: usize) -> BenchResult<u64> {
    let slot = i % KEYS_PER_TASK;
    match case {
        Case::RawC1 | Case::RawC64 => {
            let key = format!("bench-raw:{task}:{slot}");
            raw_set_get(&mut fx.raw.clone(), &key, &fx.raw_value).await
        }
        Case::RawManagerC64 => {
            let key = format!("bench-raw:{task}:{slot}");
            raw_set_get(&mut fx.raw_manager.clone(), &key, &fx.raw_value).await
        }
        Case::HandJsonC1 | Case::HandJsonC64 => {
            let key = format!("bench-hand:{task}:{slot}");
            hand_set_get(&mut fx.raw.clone(), &key, &fx.price).await
        }
        Case::FredC64 => fx.fred.set_get(Fred::One, task, slot).await,
        Case::FredPool4C64 => fx.fred.set_get(Fred::Pool4, task, slot).await,
        Case::FredGetC64 => fx.fred.get(Fred::One, slot).await,
        Case::FredGetPool4C64 => fx.fred.get(Fred::Pool4, slot).await,
        Case::TypedJsonC1 | Case::TypedJsonC64 => typed_set_get(&fx.json, fx, task, slot).await,
        Case::TypedMsgpackC64 => typed_set_get(&fx.msgpack, fx, task, slot).await,
        Case::TypedBincodeC64 => typed_set_get(&fx.bincode, fx, task, slot).await,
        Case::CachedCrateC64 => {
            let key = format!("{task}:{slot}");
            fx.peer.async_cache_set_ref(&key, &fx.price).await?;
            let _ = fx.peer.async_cache_get(&key).await?;
            Ok(2)
        }
        Case::ConnPerCallC1 => {
            // The hand-written pattern: a fresh connection for every call.
            let mut conn = fx.client.get_multiplexed_async_connection().await?;
            let incr = redis::cmd("INCR")
                .arg(format!("bench-seq-raw:{slot}"))
                .take();
            let _: i64 = incr.query_async(&mut conn).await?;
            Ok(1)
        }
        Case::SharedHandleC1 => {
            fx.counters.incr(&(slot as u64), 1).await?;
            Ok(1)
        }
        Case::GetMany100 => {
            let keys: Vec<&str> = fx.batch_keys.iter().map(String::as_str).collect();
            let got = fx.json.get_many(&keys).await?;
            Ok(got.len() as u64)
        }
        Case::SequentialGet100 => {
            for key in &fx.batch_keys {
                let _ = fx.json.get(key).await?;
            }
            Ok(fx.batch_keys.len() as u64)
        }
        Case::GetOrLoadMany100 => {
            let got = fx.json.get_or_load_many(&fx.batch_keys, no_load).await?;
            Ok(got.len() as u64)
        }
        Case::SequentialGetOrLoad100 => {
            for key in &fx.batch_keys {
                let _ = fx.json.get_or_load(key, || async { None }).await?;
            }
            Ok(fx.batch_keys.len() as u64)
        }
        Case::GetOrLoadMany100Miss10 => get_or_load_many_miss10(fx).await,
        Case::L1HitC64
        | Case::RawGetC64
        | Case::TypedGetC64
        | Case::TypedGetC64Uncoalesced
        | Case::TypedGetTaggedC64 => get_step(case, fx, slot).await,
        Case::TypedJson16kC64 => fx.large.step(false, task, slot).await,
        Case::TypedJson16kLz4C64 => fx.large.step(true, task, slot).await,
    }
}

/// The cases that GET a stored key (the local tier's included): one command.
async fn get_step(case: Case, fx: &Fixture, slot: usize) -> BenchResult<u64> {
    match case {
        Case::L1HitC64 => {
            let _ = fx.local.get_shared(&fx.batch_keys[slot]).await?;
            Ok(1)
        }
        Case::RawGetC64 => raw_get(&mut fx.raw.clone(), &fx.raw_get_keys[slot]).await,
        Case::TypedGetC64 => {
            let _ = fx.json.get(&fx.batch_keys[slot]).await?;
            Ok(1)
        }
        Case::TypedGetC64Uncoalesced => {
            let _ = fx.json_uncoalesced.get(&fx.batch_keys[slot]).await?;
            Ok(1)
        }
        Case::TypedGetTaggedC64 => {
            let _ = fx.tagged.get(&fx.batch_keys[slot]).await?;
            Ok(1)
        }
        _ => Err(format!("{} is not a GET case", case.name()).into()),
    }
}

/// SET then GET of the price through `typed`: two commands.
async fn typed_set_get(
    typed: &cache_core::TypedCache<String, ModelPrice>,
    fx: &Fixture,
    task: usize,
    slot: usize,
) -> BenchResult<u64> {
    let key = format!("{task}:{slot}");
    typed.set(&key, &fx.price).await?;
    let _ = typed.get(&key).await?;
    Ok(2)
}

/// A batch of 90 stored keys and 10 never seen before, loaded by one call
/// (counted, with the batches, to check it is one per batch).
async fn get_or_load_many_miss10(fx: &Fixture) -> BenchResult<u64> {
    let fresh = fx.fresh.fetch_add(1, Ordering::Relaxed);
    let mut keys = fx.batch_keys[..90].to_vec();
    keys.extend((0..10).map(|i| format!("fresh-{fresh}-{i}")));
    let (calls, price) = (Arc::clone(&fx.loader_calls), fx.price.clone());
    let load = move |missing: Vec<String>| async move {
        calls.fetch_add(1, Ordering::Relaxed);
        let loaded = missing.into_iter().map(|k| (k, price.clone()));
        loaded.collect::<Vec<_>>()
    };
    let got = fx.json.get_or_load_many(&keys, load).await?;
    fx.batches.fetch_add(1, Ordering::Relaxed);
    Ok(got.len() as u64)
}

/// Runs `case` for `duration` and returns commands per second.
async fn measure(case: Case, fx: &Arc<Fixture>, duration: Duration) -> BenchResult<f64> {
    let fx = Arc::clone(fx);
    let step = move |task, i| {
        let fx = Arc::clone(&fx);
        async move { step(case, &fx, task, i).await }
    };
    run_tasks(case.concurrency(), duration, step).await
}

/// Runs `tasks` tasks calling `step(task, i)` for `duration`; returns the
/// commands (as counted by `step`) per second.
/// How many steps a task takes between two looks at the clock.
const CLOCK_EVERY: usize = 8;

async fn run_tasks<F, Fut>(tasks: usize, duration: Duration, step: F) -> BenchResult<f64>
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = BenchResult<u64>> + Send,
{
    let commands = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut running = Vec::new();
    for task in 0..tasks {
        let (step, commands) = (step.clone(), Arc::clone(&commands));
        running.push(tokio::spawn(async move {
            // Counted per task and the clock read every few steps: a local
            // hit takes about as long as a clock read or a shared atomic.
            let (mut i, mut done) = (0, 0);
            while i % CLOCK_EVERY != 0 || Instant::now() < deadline {
                done += step(task, i).await?;
                i += 1;
            }
            commands.fetch_add(done, Ordering::Relaxed);
            BenchResult::Ok(())
        }));
    }
    for task in running {
        task.await??;
    }
    Ok(commands.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// Per-call latency of `case` at its concurrency over `duration`: p50 and
/// p99 in microseconds. A separate pass, so the clock reads per call do not
/// touch the throughput numbers.
async fn latencies(case: Case, fx: &Arc<Fixture>, duration: Duration) -> BenchResult<(f64, f64)> {
    let deadline = Instant::now() + duration;
    let mut running = Vec::new();
    for task in 0..case.concurrency() {
        let fx = Arc::clone(fx);
        running.push(tokio::spawn(async move {
            let mut took = Vec::new();
            let mut i = 0;
            while Instant::now() < deadline {
                let started = Instant::now();
                step(case, &fx, task, i).await?;
                took.push(started.elapsed().as_secs_f64() * 1e6);
                i += 1;
            }
            BenchResult::Ok(took)
        }));
    }
    let mut all = Vec::new();
    for task in running {
        all.extend(task.await??);
    }
    all.sort_by(f64::total_cmp);
    let at = |q: f64| all.get(((all.len() as f64 - 1.0) * q) as usize).copied();
    Ok((at(0.5).unwrap_or(f64::NAN), at(0.99).unwrap_or(f64::NAN)))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

struct Options {
    quick: bool,
    /// Spawn a local 6-node cluster and run the cluster cases on it.
    cluster: bool,
    json: Option<String>,
    /// Only these cases (by name), e.g. for profiling one pair.
    cases: Option<Vec<String>>,
    /// Where to write the chart of the ratios.
    svg: Option<String>,
    /// Count allocations per command of each case, on one thread.
    allocs: bool,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        quick: false,
        cluster: false,
        json: None,
        cases: None,
        svg: None,
        allocs: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--cluster" => options.cluster = true,
            "--allocs" => options.allocs = true,
            "--json" => options.json = Some(args.next().ok_or("--json needs a path")?),
            "--svg" => options.svg = Some(args.next().ok_or("--svg needs a path")?),
            "--cases" => {
                let list = args.next().ok_or("--cases needs a comma-separated list")?;
                options.cases = Some(list.split(',').map(str::to_owned).collect());
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?}; expected --quick, --cluster, --allocs, --json PATH, --svg PATH or --cases A,B"
                ));
            }
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> BenchResult<()> {
    let options = options()?;
    let (rounds, per_case) = if options.quick {
        (3, Duration::from_millis(400))
    } else {
        (7, Duration::from_secs(2))
    };

    // A cluster named by REDIS_CLUSTER_NODES (or spawned with --cluster)
    // gets the cluster cases instead.
    if options.cluster || support::cluster_nodes().is_some() {
        let spawned_cluster;
        let nodes = match support::cluster_nodes() {
            Some(nodes) => nodes,
            None => {
                spawned_cluster = cache_testkit::RedisCluster::start();
                spawned_cluster.urls()
            }
        };
        return cluster::run(&nodes, rounds, per_case, options.json.as_deref()).await;
    }

    // Keep the spawned server alive for the whole run.
    let spawned;
    let url = match (support::sentinels(), std::env::var("REDIS_URL")) {
        (Some((master, sentinels)), _) => primary_of(&master, &sentinels).await?,
        (None, Ok(url)) => url,
        (None, Err(_)) => {
            spawned = cache_testkit::RedisServer::start("bench");
            spawned.url().to_owned()
        }
    };
    standalone(&options, &url, rounds, per_case).await
}

/// The standalone cases on the server at `url`, then their report.
async fn standalone(
    options: &Options,
    url: &str,
    rounds: usize,
    per_case: Duration,
) -> BenchResult<()> {
    let fx = Arc::new(Fixture::new(url).await?);
    let version = server_version(&fx).await?;
    println!(
        "redis {version} at {}; {} cores; {rounds} rounds x {per_case:?} per case, interleaved",
        cache_core::redact::url(url),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let wanted =
        |name: &str| (options.cases.as_ref()).is_none_or(|names| names.iter().any(|n| n == name));
    let active: Vec<Case> = Case::ALL
        .iter()
        .copied()
        .filter(|c| wanted(c.name()))
        .collect();
    let server = quiet::server_pid(&mut fx.raw.clone()).await;
    let meter = quiet::Meter::start(server.into_iter().collect());
    let mut samples = sample_rounds(&active, &fx, rounds, per_case).await?;
    // Each round's ratio against the base in the same round, before the
    // medians sort the samples.
    let position = |case: Case| active.iter().position(|&c| c == case);
    let spread = |case: Case| {
        let (own, base) = (position(case)?, position(case.raw())?);
        chart::spread(&samples[own], &samples[base])
    };
    let spreads: Vec<(Case, (f64, f64))> = (active.iter())
        .filter_map(|&case| Some((case, spread(case)?)))
        .collect();
    let medians: Vec<(Case, f64)> = active
        .iter()
        .zip(samples.iter_mut())
        .map(|(&case, s)| (case, median(s)))
        .collect();
    let ops = |case: Case| medians.iter().find(|(c, _)| *c == case).map(|(_, v)| *v);
    // p50 and p99 of every case at 64 tasks, in a pass of their own.
    let mut latency = Vec::new();
    for &case in active.iter().filter(|case| case.concurrency() == 64) {
        latency.push((case, latencies(case, &fx, per_case).await?));
    }
    let sizes = report::stored_sizes(&fx, &active).await?;
    let counts = match options.allocs {
        true => allocs::count(url, &active)?,
        false => Vec::new(),
    };
    let rows = report::rows(&ops, &spreads, &latency, &sizes, &counts);
    report::print_table(&rows);
    if let Some(path) = &options.svg {
        let title = format!(
            "typed-redis-cache against its bases: {rounds} rounds x {per_case:?}, redis {version}"
        );
        chart::draw(path, &title, &chart::bars(&rows))?;
        println!("wrote {path}");
    }
    print_targets(&ops, &fx);
    report::print_p99_targets(&rows);
    report::print_alloc_targets(&rows);
    report::print_large_targets(&ops, &sizes);
    let slow_for = per_case * if options.quick { 5 } else { 4 };
    let slow = slow_loader_cases(url, slow_for, wanted).await?;
    let quiet = meter.as_ref().and_then(quiet::Meter::finish);
    if let Some(quiet) = &quiet {
        quiet.report();
    }
    if let Some(path) = &options.json {
        let report = json_report(&rows, &slow, quiet.as_ref());
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        println!("\nwrote {path}");
    }
    Ok(())
}

/// The server's version, from INFO.
async fn server_version(fx: &Fixture) -> BenchResult<String> {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut fx.raw.clone())
        .await?;
    let version = info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .unwrap_or("unknown");
    Ok(version.trim().to_owned())
}

/// Each case's throughput in each round, the cases interleaved, after a
/// warm-up of connections, scripts and key sets.
async fn sample_rounds(
    active: &[Case],
    fx: &Arc<Fixture>,
    rounds: usize,
    per_case: Duration,
) -> BenchResult<Vec<Vec<f64>>> {
    for &case in active {
        measure(case, fx, Duration::from_millis(100)).await?;
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); active.len()];
    for round in 1..=rounds {
        for (i, &case) in active.iter().enumerate() {
            samples[i].push(measure(case, fx, per_case).await?);
        }
        // Progress for a run that takes minutes.
        eprintln!("round {round} of {rounds} done");
    }
    Ok(samples)
}
