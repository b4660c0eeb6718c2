//! A chat server's per-user message sequence numbers: increase, read the
//! current one, many users from many tasks with no number handed out twice,
//! and the same store behind the service's own `Arc<dyn SeqStore>`.
//!
//! ```text
//! cargo run --example chat_sequences                                   # memory
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example chat_sequences  # Redis
//! ```

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use cache_core::{Cacheable, TypedCache};
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

const USERS: u64 = 5;
const TASKS: u64 = 8;
const MESSAGES_PER_TASK: usize = 50;

#[tokio::main]
async fn main() -> cache_core::Result<()> {
    let cache = support::connect("chat").await?;
    let seqs = cache.typed::<MessageSeq>();
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

    // The same store behind the service's trait object.
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
