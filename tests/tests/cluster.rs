//! What only a real Redis Cluster can show: one MGET per hash slot, and a
//! slot moved between masters under traffic (resharding); a master killed
//! under traffic is in `cluster_failover.rs`. Each test gets a 6-node cluster
//! of its own.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_core::redis::cluster_routing::Slot;
use cache_core::{Cache, LoadPolicy, TypedCache};
use cache_tests::RedisCluster;

/// How far past its timeout a call may return (scheduling on a busy machine).
const MARGIN: Duration = Duration::from_millis(700);

/// One cluster test at a time: each runs six servers of its own, and the
/// resharding test measures what callers see, which two more clusters on the
/// same two cores would distort.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The total of `cmdstat_<command>` calls over the cluster's masters.
fn calls(cluster: &RedisCluster, command: &str) -> u64 {
    let field = format!("cmdstat_{command}:calls=");
    cluster
        .master_ports()
        .iter()
        .filter_map(|&port| cluster.cli(port, &["INFO", "commandstats"]))
        .filter_map(|info| {
            let line = info.lines().find(|line| line.starts_with(&field))?;
            line[field.len()..].split(',').next()?.parse::<u64>().ok()
        })
        .sum()
}

fn reset_stats(cluster: &RedisCluster) {
    for port in cluster.master_ports() {
        cluster.cli(port, &["CONFIG", "RESETSTAT"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_many_sends_one_mget_per_slot_touched_and_set_many_one_multi() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let cluster = RedisCluster::start();
    let cache = cluster.cache("mget", Duration::from_secs(5)).await;
    let values = cache.keyspace("v").typed::<u32, u32>().unwrap();
    let keys: Vec<u32> = (0..1_000).collect();
    let entries: Vec<(&u32, &u32)> = keys.iter().map(|k| (k, k)).collect();
    let slots: HashSet<Slot> = keys.iter().map(|k| Slot::for_key(values.key(k))).collect();

    reset_stats(&cluster);
    values.set_many(&entries).await.unwrap();
    assert_eq!(
        calls(&cluster, "multi"),
        slots.len() as u64,
        "one MULTI per slot"
    );

    reset_stats(&cluster);
    let wanted: Vec<&u32> = keys.iter().collect();
    let got = values.get_many(&wanted).await.unwrap();
    assert_eq!(
        calls(&cluster, "mget"),
        slots.len() as u64,
        "one MGET per slot"
    );
    // In the caller's order.
    let expected: Vec<Option<u32>> = keys.iter().map(|&k| Some(k)).collect();
    assert_eq!(got, expected);
    reset_stats(&cluster);
    assert_eq!(values.delete_many(&wanted).await.unwrap(), 1_000);
    assert_eq!(
        calls(&cluster, "del"),
        slots.len() as u64,
        "one DEL per slot"
    );
}

/// `count` keys of `values` whose full keys share one hash slot.
fn keys_in_one_slot(values: &TypedCache<String, u64>, count: usize) -> (Slot, Vec<String>) {
    let slot = Slot::for_key(values.key("seed"));
    let mut keys = vec!["seed".to_owned()];
    let mut i = 0_u64;
    while keys.len() < count {
        let key = format!("s{i}");
        if Slot::for_key(values.key(&key)) == slot {
            keys.push(key);
        }
        i += 1;
    }
    (slot, keys)
}

fn node_id(cluster: &RedisCluster, port: u16) -> String {
    let nodes = cluster.cli(port, &["CLUSTER", "NODES"]).unwrap_or_default();
    let line = nodes
        .lines()
        .find(|line| line.contains("myself"))
        .unwrap_or_default();
    line.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_moved_under_traffic_loses_nothing_and_shows_no_error() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let cluster = RedisCluster::start();
    let cache: Cache = cluster.cache("reshard", Duration::from_secs(2)).await;
    let values = cache.keyspace("r").typed::<String, u64>().unwrap();
    let (slot, mut keys) = keys_in_one_slot(&values, 24);
    for key in &keys {
        values.set(key, &0).await.unwrap();
    }
    // Four keys for batches (one MULTI, one MGET, one GET+PTTL pipeline), the
    // rest for counters.
    let batch_keys: Vec<String> = keys.split_off(20);
    let source = cluster.master_of(&values.key(&keys[0]));
    let target = cluster
        .master_ports()
        .into_iter()
        .find(|&port| port != source)
        .unwrap();

    // Counters in the moving slot, bumped all the while.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for key in keys.clone() {
        let (values, stop, done) = (values.clone(), Arc::clone(&stop), Arc::clone(&done));
        tasks.push(tokio::spawn(async move {
            let mut last = 0;
            while !stop.load(Ordering::SeqCst) {
                last = values.incr(&key, 1).await.unwrap();
                // Only this task writes this key.
                assert_eq!(values.get(&key).await.unwrap(), Some(last));
                done.fetch_add(1, Ordering::SeqCst);
            }
            (key, last)
        }));
    }
    // Early refresh makes get_or_load read with a GET+PTTL pipeline.
    let refreshing = cache
        .keyspace("r")
        .load_policy(LoadPolicy::DEFAULT.early_refresh(0.5))
        .typed::<String, u64>()
        .unwrap();
    let batches = spawn_batches(&values, refreshing, batch_keys, &stop);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let slot_text = cluster.slot_of(&values.key(&keys[0])).to_string();
    let _ = slot;
    move_slot(&cluster, &slot_text, source, target).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);

    assert_eq!(
        cluster.master_of(&values.key(&keys[0])),
        target,
        "the slot moved"
    );
    assert!(batches.await.unwrap() > 1, "batches ran");
    for task in tasks {
        let (key, last) = task.await.unwrap();
        // Every acknowledged increment is there: nothing lost in the move.
        assert_eq!(values.get(&key).await.unwrap(), Some(last), "{key}");
    }
    assert!(done.load(Ordering::SeqCst) > 100, "too little traffic");
}

/// A task that writes and reads `batch_keys` as batches (one MULTI, one
/// MGET, one GET+PTTL pipeline through `refreshing`) until `stop`, checking
/// every answer; it returns how many rounds it made.
fn spawn_batches(
    values: &TypedCache<String, u64>,
    refreshing: TypedCache<String, u64>,
    batch_keys: Vec<String>,
    stop: &Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    let (values, stop) = (values.clone(), Arc::clone(stop));
    tokio::spawn(async move {
        let names: Vec<&str> = batch_keys.iter().map(String::as_str).collect();
        let mut round = 0_u64;
        while !stop.load(Ordering::SeqCst) {
            round += 1;
            let writes: Vec<(&str, &u64)> = names.iter().map(|key| (*key, &round)).collect();
            values.set_many(&writes).await.unwrap();
            let read = values.get_many(&names).await.unwrap();
            assert_eq!(read, vec![Some(round); names.len()]);
            let found = refreshing
                .get_or_load(names[0], || async { None })
                .await
                .unwrap();
            assert_eq!(found, Some(round));
        }
        round
    })
}

/// Moves the slot `slot_text` from the master on `source` to the one on `target` as
/// `redis-cli --cluster reshard` does: IMPORTING and MIGRATING, MIGRATE of
/// its keys ten at a time, then SETSLOT NODE on every master.
async fn move_slot(cluster: &RedisCluster, slot_text: &str, source: u16, target: u16) {
    let (source_id, target_id) = (node_id(cluster, source), node_id(cluster, target));
    let cli = |port: u16, args: &[&str]| {
        let answer = cluster.cli(port, args);
        assert!(answer.is_some(), "redis-cli -p {port} {args:?} failed");
        answer.unwrap_or_default()
    };
    cli(
        target,
        &["CLUSTER", "SETSLOT", slot_text, "IMPORTING", &source_id],
    );
    cli(
        source,
        &["CLUSTER", "SETSLOT", slot_text, "MIGRATING", &target_id],
    );
    loop {
        let batch = cli(source, &["CLUSTER", "GETKEYSINSLOT", slot_text, "10"]);
        let batch: Vec<&str> = batch.lines().filter(|line| !line.is_empty()).collect();
        if batch.is_empty() {
            break;
        }
        let target_port = target.to_string();
        let mut args = vec![
            "MIGRATE",
            "127.0.0.1",
            &target_port,
            "",
            "0",
            "5000",
            "KEYS",
        ];
        args.extend(batch);
        cli(source, &args);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for port in cluster.master_ports() {
        cli(port, &["CLUSTER", "SETSLOT", slot_text, "NODE", &target_id]);
    }
}

/// Passwords work as on one server, and errors name the nodes without them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_protected_cluster_connects_and_errors_hide_the_password() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let cluster = RedisCluster::start_with_password(Some("s3cret-pw"));
    let cache = cluster.cache("auth", Duration::from_secs(2)).await;
    let names = cache.keyspace("n").typed::<String, String>().unwrap();
    names.set("a", &"ada".to_owned()).await.unwrap();
    assert_eq!(names.get("a").await.unwrap().as_deref(), Some("ada"));

    // A lazy handle connects on first use.
    let lazy = Cache::builder()
        .cluster_nodes(cluster.urls())
        .namespace(cache.namespace().unwrap_or_default())
        .lazy_connect(true)
        .build()
        .await
        .unwrap();
    let lazy_names = lazy.keyspace("n").typed::<String, String>().unwrap();
    assert_eq!(lazy_names.get("a").await.unwrap().as_deref(), Some("ada"));

    let wrong: Vec<String> = cluster
        .ports()
        .iter()
        .map(|port| format!("redis://:not-the-pw@127.0.0.1:{port}"))
        .collect();
    let started = Instant::now();
    let err = Cache::builder()
        .cluster_nodes(wrong)
        .timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(!text.contains("not-the-pw"), "{text}");
    assert!(text.contains("127.0.0.1:"), "{text}");
    assert!(started.elapsed() <= Duration::from_secs(1) + MARGIN);

    // Nothing listening: an error within the timeout, naming the node.
    let started = Instant::now();
    let err = Cache::builder()
        .cluster_nodes(["redis://:pw@127.0.0.1:1"])
        .timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap_err();
    assert!(
        started.elapsed() <= Duration::from_millis(500) + MARGIN,
        "{err}"
    );
    assert!(err.is_connection() || err.is_timeout(), "{err:?}");
    assert!(!err.to_string().contains(":pw@"), "{err}");
}

/// A batch whose keys stay split between the two nodes of a half-moved slot
/// is never run; once the handle's budget is spent it fails with a timeout
/// whose outcome is known (not run), and nothing was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_the_cluster_never_lets_run_times_out_unrun() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let cluster = RedisCluster::start();
    let timeout = Duration::from_millis(500);
    let cache: Cache = cluster.cache("never_run", timeout).await;
    let values = cache.keyspace("n").typed::<String, u64>().unwrap();
    let (_, keys) = keys_in_one_slot(&values, 2);
    values.set(&keys[0], &0).await.unwrap();
    let source = cluster.master_of(&values.key(&keys[0]));
    let target = cluster
        .master_ports()
        .into_iter()
        .find(|&port| port != source)
        .unwrap();
    let (source_id, target_id) = (node_id(&cluster, source), node_id(&cluster, target));
    let slot = cluster.slot_of(&values.key(&keys[0])).to_string();
    let cli = |port: u16, args: &[&str]| assert!(cluster.cli(port, args).is_some(), "{args:?}");
    // Half moved, and left so: the first key on the old node, the second
    // (absent there) asked of the new one.
    cli(
        target,
        &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &source_id],
    );
    cli(
        source,
        &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &target_id],
    );

    let started = Instant::now();
    let writes = [(keys[0].as_str(), &1_u64), (keys[1].as_str(), &2_u64)];
    let refused = values.set_many(&writes).await;
    let took = started.elapsed();
    for port in [source, target] {
        cli(port, &["CLUSTER", "SETSLOT", &slot, "STABLE"]);
    }
    match refused {
        Err(err) => assert!(err.is_timeout() && !err.is_outcome_unknown(), "{err:?}"),
        Ok(()) => panic!("a batch split across a half-moved slot was run"),
    }
    assert!(took < timeout + Duration::from_millis(300), "took {took:?}");
    assert_eq!(values.get(&keys[0]).await.unwrap(), Some(0), "not run");
    assert_eq!(values.get(&keys[1]).await.unwrap(), None, "not run");
}
