//! What only the memory backend has: bounded memory under expiring keys.

use std::time::Duration;

use cache_core::Cache;

#[tokio::test]
async fn expired_entries_are_purged_so_memory_does_not_grow() {
    let cache = Cache::memory();
    let sessions = cache
        .keyspace("session")
        .ttl(Duration::from_millis(50))
        .typed::<u64, u64>()
        .unwrap();
    for round in 0..5u64 {
        for i in 0..10_000u64 {
            sessions.set(&(round * 10_000 + i), &i).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    // 50,000 keys were written and at most 10,000 are live at once; the sweep
    // keeps the map within twice the live entries (plus its minimum batch).
    let held = cache.memory_entries().unwrap();
    assert!(
        held <= 2 * 10_000 + 64,
        "memory backend holds {held} entries"
    );

    // Once everything has expired, one more write sweeps the rest.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    sessions.set(&u64::MAX, &0).await.unwrap();
    assert_eq!(cache.memory_entries(), Some(1));
}

#[tokio::test]
async fn handles_share_one_store() {
    let cache = Cache::memory();
    let clone = cache.clone();
    let a = cache.keyspace("x").typed::<u8, u8>().unwrap();
    let b = clone.keyspace("x").typed::<u8, u8>().unwrap();
    a.set(&1, &9).await.unwrap();
    assert_eq!(b.get(&1).await.unwrap(), Some(9));
    // A second `Cache::memory()` is a separate store.
    let other = Cache::memory().keyspace("x").typed::<u8, u8>().unwrap();
    assert_eq!(other.get(&1).await.unwrap(), None);
}

#[test]
fn handles_are_send_sync_debug_and_cheap_to_clone() {
    fn shareable<T: Send + Sync + std::fmt::Debug + Clone + 'static>() {}
    shareable::<Cache>();
    shareable::<cache_core::TypedCache<String, u64>>();
    shareable::<cache_core::TypedSet<u64, u64>>();
    shareable::<cache_core::Locks<str>>();
    // A clone is a pointer copy: the same store, no new connection.
    let cache = Cache::memory();
    assert_eq!(format!("{:?}", cache.clone()), format!("{cache:?}"));
}
