//! Starts a local 6-node Redis Cluster for scripts (scripts/test.sh runs the
//! examples on it), prints its node URLs comma-separated on one line, and
//! keeps it up until its standard input closes. The nodes stop with it.

use std::io::Read;

fn main() {
    let cluster = cache_tests::RedisCluster::start();
    println!("{}", cluster.urls().join(","));
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    drop(cluster);
}
