//! A user directory behind `#[cached]` methods: 1,000 concurrent calls for a
//! cold user read the database once; a failed read is not cached (the next
//! call reads again); a missing user is cached as such for a while; one
//! user's entry is dropped after an update; and a batch lookup reads only
//! the users it has not cached.
//!
//! ```text
//! cargo run --example cached_functions
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example cached_functions
//! ```

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use cache_core::{Cache, cached};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

/// What a lookup can fail with: the database's error or the cache's.
#[derive(Debug)]
enum DirectoryError {
    Database(String),
    Cache(cache_core::Error),
}

impl std::fmt::Display for DirectoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DirectoryError::Database(message) => write!(f, "database: {message}"),
            DirectoryError::Cache(error) => write!(f, "cache: {error}"),
        }
    }
}

impl std::error::Error for DirectoryError {}

impl From<cache_core::Error> for DirectoryError {
    fn from(error: cache_core::Error) -> Self {
        DirectoryError::Cache(error)
    }
}

/// The service: a cache handle and a stand-in database that counts reads.
#[derive(Clone)]
struct Directory {
    cache: Cache,
    reads: Arc<AtomicUsize>,
    database_down: Arc<AtomicBool>,
}

impl Directory {
    /// Users 1 to 99 exist; a missing one is remembered for 30 s.
    #[cached(cache = self.cache, prefix = "user", ttl = "10m", negative_ttl = "30s")]
    async fn user(&self, id: u64) -> Result<Option<User>, DirectoryError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        if self.database_down.load(Ordering::SeqCst) {
            return Err(DirectoryError::Database("connection refused".into()));
        }
        let name = format!("user {id}");
        Ok((1..100).contains(&id).then_some(User { id, name }))
    }

    /// Many users in one query, for the ones not cached.
    #[cached(cache = self.cache, prefix = "user-name", ttl = "10m", batch, key = ids)]
    async fn names(&self, ids: &[u64]) -> HashMap<u64, String> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        println!("  batch query for {ids:?}");
        ids.iter().map(|id| (*id, format!("user {id}"))).collect()
    }

    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let directory = Directory {
        cache: support::connect("directory-demo").await?,
        reads: Arc::default(),
        database_down: Arc::default(),
    };
    // A fresh run: drop what an earlier run cached.
    for id in [7, 8, 500] {
        directory.user_invalidate(id).await?;
    }
    for id in 1..=4 {
        directory.names_invalidate(&id).await?;
    }
    let calls: Vec<_> = (0..1_000)
        .map(|_| {
            let directory = directory.clone();
            tokio::spawn(async move { directory.user(7).await })
        })
        .collect();
    for call in calls {
        call.await??;
    }
    println!(
        "1,000 concurrent calls for user 7: {} database read",
        directory.reads()
    );
    assert_eq!(directory.reads(), 1);

    directory.database_down.store(true, Ordering::SeqCst);
    let failed = directory.user(8).await;
    println!("user 8 while the database is down: {failed:?}");
    assert!(matches!(failed, Err(DirectoryError::Database(_))));
    directory.database_down.store(false, Ordering::SeqCst);
    let user = directory.user(8).await?;
    println!("user 8 once it is back (the error was not cached): {user:?}");
    assert_eq!(directory.reads(), 3);

    assert_eq!(directory.user(500).await?, None);
    assert_eq!(directory.user(500).await?, None);
    println!("user 500 does not exist: asked twice, read once (cached as missing)");
    assert_eq!(directory.reads(), 4);

    println!("user 7's key: {}", directory.user_key(7));
    directory.user_invalidate(7).await?;
    directory.user(7).await?;
    println!("after user 7 was updated and its entry dropped: read again");
    assert_eq!(directory.reads(), 5);

    println!("names of 1, 2, 3, then of 2, 3, 4:");
    directory.names(&[1, 2, 3]).await;
    let names = directory.names(&[2, 3, 4]).await;
    assert_eq!(names.len(), 3);
    assert_eq!(directory.reads(), 7);
    Ok(())
}
