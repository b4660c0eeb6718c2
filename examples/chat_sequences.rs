//! A chat server's per-user message sequence numbers: increase, read the
//! current one, many users from many tasks with no number handed out twice,
//! and the same store behind the service's own `Arc<dyn SeqStore>`. Then the
//! block allocator that survives a Redis data loss, a group-member list
//! cached with cache-aside, and the set of online users.
//!
//! ```text
//! cargo run --example chat_sequences                                   # memory
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example chat_sequences  # Redis
//! ```

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache_core::{Cacheable, Sequences, TypedCache, TypedSet};
use serde::{Deserialize, Serialize};

mod support;

/// The last sequence number handed to a user; stored as a Redis integer.
#[derive(Debug, PartialEq, Serialize, Deserialize, Cacheable)]
#[cache(prefix = "seq", key_type = "u64")]
struct MessageSeq(i64);

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The chat server's own abstraction over where sequence numbers come from.
trait SeqStore: Send + Sync {
    /// The next number for `user`.
    fn next(&self, user: u64) -> BoxFuture<'_, cache_core::Result<i64>>;
    /// The last number handed out to `user`, if any.
    fn current(&self, user: u64) -> BoxFuture<'_, cache_core::Result<Option<i64>>>;
}

/// `SeqStore` on the typed cache.
struct CacheSeqStore {
    seqs: TypedCache<u64, MessageSeq>,
}

impl SeqStore for CacheSeqStore {
    fn next(&self, user: u64) -> BoxFuture<'_, cache_core::Result<i64>> {
        Box::pin(async move { Ok(self.seqs.incr(&user, 1).await?.0) })
    }

    fn current(&self, user: u64) -> BoxFuture<'_, cache_core::Result<Option<i64>>> {
        Box::pin(async move { Ok(self.seqs.get(&user).await?.map(|seq| seq.0)) })
    }
}

/// The part of the chat server that stamps messages.
struct ChatServer {
    seqs: Arc<dyn SeqStore>,
}

impl ChatServer {
    async fn send(&self, user: u64, text: &str) -> cache_core::Result<String> {
        let seq = self.seqs.next(user).await?;
        Ok(format!("user {user} #{seq}: {text}"))
    }
}

/// Stands in for the chat server's database.
#[derive(Default)]
struct Database {
    /// The highest sequence number reserved per user (persisted on each crossing).
    reserved: Mutex<HashMap<u64, i64>>,
    /// Group members, the source of truth for the member-list cache.
    groups: HashMap<u64, Vec<u64>>,
    group_reads: Mutex<usize>,
}

impl Database {
    fn persist_reserved(&self, user: u64, max: i64) {
        if let Ok(mut reserved) = self.reserved.lock() {
            reserved.insert(user, max);
        }
    }

    fn reserved(&self, user: u64) -> i64 {
        self.reserved
            .lock()
            .map(|r| r.get(&user).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn group_members(&self, group: u64) -> Vec<u64> {
        if let Ok(mut reads) = self.group_reads.lock() {
            *reads += 1;
        }
        self.groups.get(&group).cloned().unwrap_or_default()
    }
}

/// A number for `user`; on a crossing, persist the new block before using it.
async fn stamp(seqs: &Sequences<u64>, db: &Database, user: u64) -> cache_core::Result<i64> {
    let allocation = seqs.next(&user).await?;
    if allocation.crossed {
        db.persist_reserved(user, allocation.reserved_max);
    }
    Ok(allocation.value)
}

/// Cache-aside for a member list; an empty group is cached as empty, not as a miss.
async fn members_of(
    members: &TypedSet<u64, u64>,
    db: &Database,
    group: u64,
) -> cache_core::Result<Vec<u64>> {
    if let Some(cached) = members.members(&group).await? {
        return Ok(cached);
    }
    let loaded = db.group_members(group);
    members.replace(&group, &loaded).await?;
    Ok(loaded)
}

const USERS: u64 = 5;
const TASKS: u64 = 8;
const MESSAGES_PER_TASK: usize = 50;

#[tokio::main]
async fn main() -> cache_core::Result<()> {
    let cache = support::connect("chat").await?;
    unique_numbers(&cache).await?;
    behind_a_trait_object(&cache).await?;
    let db = Database {
        groups: HashMap::from([(1, vec![10, 11, 12]), (2, vec![])]),
        ..Database::default()
    };
    survives_data_loss(&cache, &db).await?;
    group_members(&cache, &db).await?;
    online_users(&cache).await
}

/// Numbers from many tasks for many users: none handed out twice.
async fn unique_numbers(cache: &cache_core::Cache) -> cache_core::Result<()> {
    let seqs = cache.typed::<MessageSeq>()?;
    for user in 0..USERS {
        seqs.delete(&user).await?; // a fresh run
    }

    // Increase and read back.
    let first = seqs.incr(&0, 1).await?;
    println!(
        "user 0 first number: {first:?}; current: {:?}",
        seqs.get(&0).await?
    );
    assert_eq!(first, MessageSeq(1));

    // Many tasks, many users: every number is unique per user.
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let seqs = seqs.clone();
        tasks.push(tokio::spawn(async move {
            let mut handed_out = Vec::with_capacity(MESSAGES_PER_TASK);
            for i in 0..MESSAGES_PER_TASK {
                let user = (task + i as u64) % USERS;
                handed_out.push((user, seqs.incr(&user, 1).await?.0));
            }
            cache_core::Result::Ok(handed_out)
        }));
    }
    let mut seen = HashSet::new();
    for task in tasks {
        let handed_out = task
            .await
            .map_err(|err| cache_core::Error::config(err.to_string()))??;
        for pair in handed_out {
            assert!(seen.insert(pair), "{pair:?} was handed out twice");
        }
    }
    let total: i64 = {
        let mut sum = 0;
        for user in 0..USERS {
            let current = seqs.get(&user).await?.map_or(0, |seq| seq.0);
            println!(
                "user {user}: current sequence {current} ({})",
                seqs.key(&user)
            );
            sum += current;
        }
        sum
    };
    println!(
        "{} numbers handed out by {TASKS} tasks, none twice",
        seen.len()
    );
    assert_eq!(total, 1 + (TASKS as i64) * (MESSAGES_PER_TASK as i64));
    Ok(())
}

/// The same store behind the service's trait object.
async fn behind_a_trait_object(cache: &cache_core::Cache) -> cache_core::Result<()> {
    let seqs = cache.typed::<MessageSeq>()?;
    let server = ChatServer {
        seqs: Arc::new(CacheSeqStore { seqs: seqs.clone() }),
    };
    println!("{}", server.send(3, "hello").await?);
    println!("{}", server.send(3, "again").await?);
    let current = server.seqs.current(3).await?;
    println!("user 3 current via the trait object: {current:?}");
    assert_eq!(current, seqs.get(&3).await?.map(|seq| seq.0));
    Ok(())
}

/// Block allocation that survives a Redis data loss.
async fn survives_data_loss(cache: &cache_core::Cache, db: &Database) -> cache_core::Result<()> {
    let blocks = cache.keyspace("msg-seq").sequences::<u64>(100)?;
    let raw = cache.keyspace("msg-seq").typed::<u64, i64>()?;
    raw.delete(&9).await?; // a fresh run
    let mut last = 0;
    for _ in 0..150 {
        last = stamp(&blocks, db, 9).await?;
    }
    println!(
        "user 9: number {last}, persisted maximum {}",
        db.reserved(9)
    );
    raw.delete(&9).await?; // Redis loses the key (a restart without persistence)
    blocks.seed(&9, db.reserved(9)).await?; // on startup: re-seed from the database
    let after = stamp(&blocks, db, 9).await?;
    println!(
        "after the data loss and a seed: number {after} (above {last}), persisted maximum {}",
        db.reserved(9)
    );
    assert!(after > last);
    Ok(())
}

/// Group members, cache-aside.
async fn group_members(cache: &cache_core::Cache, db: &Database) -> cache_core::Result<()> {
    let members = cache
        .keyspace("group-members")
        .ttl(Duration::from_secs(600))
        .typed_set::<u64, u64>()?;
    for group in [1, 2] {
        members.delete(&group).await?;
    }
    for _ in 0..2 {
        let one = members_of(&members, db, 1).await?;
        let two = members_of(&members, db, 2).await?;
        println!(
            "group 1: {} members, group 2: {} members",
            one.len(),
            two.len()
        );
    }
    let reads = db.group_reads.lock().map(|r| *r).unwrap_or(0);
    println!(
        "database reads for two rounds over two groups: {reads} (the empty group is cached too)"
    );
    assert_eq!(reads, 2);
    Ok(())
}

/// Online users per server, as a typed set.
async fn online_users(cache: &cache_core::Cache) -> cache_core::Result<()> {
    let online = cache
        .keyspace("online")
        .ttl(Duration::from_secs(120))
        .typed_set::<str, u64>()?;
    online.delete("eu-1").await?;
    online.add("eu-1", &[10, 11, 12]).await?;
    online.remove("eu-1", &[11]).await?;
    println!(
        "online on eu-1: {:?}; is 11 online: {}",
        online.len("eu-1").await?,
        online.contains("eu-1", &11).await?
    );
    assert_eq!(online.len("eu-1").await?, Some(2));
    Ok(())
}
