//! The building blocks (locks, flags, one-time codes, typed sets, and the
//! errors of all of them), each test run on the memory backend, a spawned
//! Redis and the cluster. Rate limits and sequences are in `limits.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use cache_core::{Cache, Error, MAX_SEQUENCE, RateLimit, Ttl, Verification};
use cache_tests::Env;

cache_tests::backend_suite!(
    locks_exclude_each_other_across_two_handles,
    a_stalled_holder_cannot_release_the_next_holders_lock,
    lock_watchdog_keeps_the_lease_and_drop_releases,
    flags_expire_when_the_token_would_have,
    one_time_codes_work_once_and_lock_after_wrong_guesses,
    typed_sets_tell_empty_from_missing,
    typed_sets_and_values_at_one_key_are_wrong_type,
    bad_input_is_a_clear_error,
    refused_block_operations_change_nothing,
);

/// Another handle on the same store: a second connection for Redis, a clone
/// of the same in-process store for memory.
async fn second_handle(env: &Env) -> Cache {
    match env.another_handle() {
        Some(builder) => builder.build().await.unwrap(),
        None => env.cache.clone(),
    }
}

async fn locks_exclude_each_other_across_two_handles(env: Env) {
    let handles = [env.cache.clone(), second_handle(&env).await];
    let inside = Arc::new(AtomicBool::new(false));
    let last_token = Arc::new(AtomicU64::new(0));
    let acquisitions = Arc::new(AtomicU64::new(0));
    let started = micros_since_epoch();
    let mut tasks = Vec::new();
    for task in 0..20usize {
        let locks = handles[task % 2].keyspace("lock").locks::<str>().unwrap();
        let inside = Arc::clone(&inside);
        let last_token = Arc::clone(&last_token);
        let acquisitions = Arc::clone(&acquisitions);
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                let guard = locks
                    .acquire("resource", Duration::from_secs(5), Duration::from_secs(30))
                    .await
                    .unwrap();
                assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
                acquisitions.fetch_add(1, Ordering::SeqCst);
                let previous = last_token.swap(guard.fencing_token(), Ordering::SeqCst);
                assert!(
                    guard.fencing_token() > previous,
                    "fencing tokens must increase"
                );
                tokio::task::yield_now().await;
                inside.store(false, Ordering::SeqCst);
                assert!(guard.release().await.unwrap());
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(acquisitions.load(Ordering::SeqCst), 1_000);
    // Tokens come from the clock (see `Locks`), so the last is past the start.
    let last = last_token.load(Ordering::SeqCst);
    assert!(
        last > started && last < micros_since_epoch() + 1_000_000,
        "{last}"
    );
}

fn micros_since_epoch() -> u64 {
    let since = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH);
    u64::try_from(since.unwrap().as_micros()).unwrap()
}

async fn a_stalled_holder_cannot_release_the_next_holders_lock(env: Env) {
    let locks = env.cache.keyspace("lock").locks::<str>().unwrap();
    let other = second_handle(&env)
        .await
        .keyspace("lock")
        .locks::<str>()
        .unwrap();
    let stalled = locks
        .acquire("job", Duration::from_millis(150), Duration::ZERO)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await; // the lease runs out
    let next = other
        .acquire("job", Duration::from_secs(10), Duration::from_secs(1))
        .await
        .unwrap();
    assert!(next.fencing_token() > stalled.fencing_token());
    assert!(!stalled.extend(Duration::from_secs(10)).await.unwrap());
    assert!(!stalled.release().await.unwrap(), "not the owner any more");
    assert!(
        locks
            .try_acquire("job", Duration::from_secs(1))
            .await
            .unwrap()
            .is_none()
    );
    assert!(next.release().await.unwrap());
}

async fn lock_watchdog_keeps_the_lease_and_drop_releases(env: Env) {
    let locks = env.cache.keyspace("lock").locks::<str>().unwrap();
    let mut guard = locks
        .acquire("long-job", Duration::from_millis(200), Duration::ZERO)
        .await
        .unwrap();
    guard.keep_alive(Duration::from_millis(200));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        locks
            .try_acquire("long-job", Duration::from_secs(1))
            .await
            .unwrap()
            .is_none()
    );
    drop(guard);
    let started = Instant::now();
    loop {
        if locks
            .try_acquire("long-job", Duration::from_secs(1))
            .await
            .unwrap()
            .is_some()
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_millis(150),
            "drop did not release"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn flags_expire_when_the_token_would_have(env: Env) {
    let revoked = env.cache.keyspace("jwt-revoked").flags::<str>().unwrap();
    let until = SystemTime::now() + Duration::from_millis(400);
    assert!(revoked.raise_until("jti-1", until).await.unwrap());
    assert!(revoked.is_raised("jti-1").await.unwrap());
    assert!(!revoked.is_raised("jti-2").await.unwrap());
    let ttl = env
        .cache
        .keyspace("jwt-revoked")
        .typed::<String, u8>()
        .unwrap();
    let left = ttl.ttl("jti-1").await.unwrap().remaining().unwrap();
    assert!(
        left <= Duration::from_millis(400) && left > Duration::from_millis(200),
        "{left:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!revoked.is_raised("jti-1").await.unwrap());

    let past = SystemTime::now() - Duration::from_secs(5);
    assert!(!revoked.raise_until("old", past).await.unwrap());
    assert!(!revoked.is_raised("old").await.unwrap());
    revoked
        .raise_for("jti-3", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(revoked.lower("jti-3").await.unwrap());
    assert!(!revoked.is_raised("jti-3").await.unwrap());
}

async fn one_time_codes_work_once_and_lock_after_wrong_guesses(env: Env) {
    let codes = env.cache.keyspace("otp").one_time_codes::<str>(3).unwrap();
    assert_eq!(codes.verify("a", "1").await.unwrap(), Verification::Missing);
    codes
        .issue("a", "123456", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        codes.verify("a", "111111").await.unwrap(),
        Verification::Rejected { attempts_left: 2 }
    );
    assert_eq!(
        codes.verify("a", "222222").await.unwrap(),
        Verification::Rejected { attempts_left: 1 }
    );
    assert_eq!(
        codes.verify("a", "333333").await.unwrap(),
        Verification::Locked
    );
    assert_eq!(
        codes.verify("a", "123456").await.unwrap(),
        Verification::Locked,
        "right code, too late"
    );

    // A new code resets the attempts; of many concurrent right guesses one wins.
    codes
        .issue("a", "654321", Duration::from_secs(60))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let codes = codes.clone();
        tasks.push(tokio::spawn(async move {
            codes.verify("a", "654321").await.unwrap()
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        let outcome = task.await.unwrap();
        assert!(
            matches!(outcome, Verification::Accepted | Verification::Missing),
            "{outcome:?}"
        );
        accepted += usize::from(outcome == Verification::Accepted);
    }
    assert_eq!(accepted, 1);

    codes
        .issue("b", "1", Duration::from_millis(150))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        codes.verify("b", "1").await.unwrap(),
        Verification::Missing,
        "expired"
    );
}

async fn typed_sets_tell_empty_from_missing(env: Env) {
    let members = env
        .cache
        .keyspace("group-members")
        .ttl(Duration::from_secs(600))
        .typed_set::<u64, String>()
        .unwrap();
    assert_eq!(members.members(&1).await.unwrap(), None);
    assert_eq!(members.len(&1).await.unwrap(), None);
    members.replace(&1, &[]).await.unwrap();
    assert_eq!(members.members(&1).await.unwrap(), Some(vec![]));
    assert_eq!(members.len(&1).await.unwrap(), Some(0));
    assert!(members.ttl(&1).await.unwrap().remaining().unwrap() > Duration::from_secs(590));

    let names: Vec<String> = ["ann", "bo", "cy"].map(String::from).to_vec();
    assert_eq!(members.add(&1, &names).await.unwrap(), 3);
    assert_eq!(members.add(&1, &names[..1]).await.unwrap(), 0);
    let mut got = members.members(&1).await.unwrap().unwrap();
    got.sort();
    assert_eq!(got, names);
    assert!(members.contains(&1, &"bo".to_owned()).await.unwrap());
    assert!(!members.contains(&1, &"zed".to_owned()).await.unwrap());
    assert_eq!(members.remove(&1, &names).await.unwrap(), 3);
    assert_eq!(
        members.members(&1).await.unwrap(),
        Some(vec![]),
        "still cached, now empty"
    );

    members.replace(&1, &["dee".to_owned()]).await.unwrap();
    assert_eq!(
        members.members(&1).await.unwrap(),
        Some(vec!["dee".to_owned()])
    );
    assert!(members.delete(&1).await.unwrap());
    assert_eq!(members.members(&1).await.unwrap(), None);
}

async fn typed_sets_and_values_at_one_key_are_wrong_type(env: Env) {
    let set = env.cache.keyspace("mixed").typed_set::<str, u64>().unwrap();
    let value = env.cache.keyspace("mixed").typed::<str, u64>().unwrap();
    set.add("k", &[1]).await.unwrap();
    let err = value.get("k").await.unwrap_err();
    assert!(err.is_wrong_type(), "{err:?}");
    assert_eq!(err.key(), Some(value.key("k").as_str()));
    assert!(value.incr("k", 1).await.unwrap_err().is_wrong_type());
    value.set("v", &1).await.unwrap();
    assert!(set.add("v", &[1]).await.unwrap_err().is_wrong_type());
    assert!(set.members("v").await.unwrap_err().is_wrong_type());
}

async fn bad_input_is_a_clear_error(env: Env) {
    let ks = |prefix: &str| env.cache.keyspace(prefix);
    let err = ks("a")
        .rate_limiter::<str>(RateLimit::fixed_window(0, Duration::from_secs(1)))
        .unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
    let err = ks("a")
        .rate_limiter::<str>(RateLimit::sliding_window(5, Duration::ZERO))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidTtl { .. }), "{err:?}");
    assert!(
        ks("s")
            .sequences::<u64>(0)
            .unwrap_err()
            .to_string()
            .contains("step")
    );
    let seqs = ks("s").sequences::<u64>(10).unwrap();
    assert!(
        seqs.next_many(&[])
            .await
            .unwrap_err()
            .to_string()
            .contains("empty list")
    );
    assert!(
        ks("o")
            .one_time_codes::<str>(0)
            .unwrap_err()
            .to_string()
            .contains("max_attempts")
    );
    let codes = ks("o").one_time_codes::<str>(3).unwrap();
    assert!(codes.issue("a", "1", Duration::ZERO).await.is_err());
    let locks = ks("l").locks::<str>().unwrap();
    let err = locks.try_acquire("x", Duration::ZERO).await.unwrap_err();
    assert!(matches!(err, Error::InvalidTtl { .. }), "{err:?}");
    let set = ks("m").typed_set::<str, u64>().unwrap();
    let err = set.add("g", &[]).await.unwrap_err();
    assert!(err.to_string().contains("at least one member"), "{err}");
    assert!(set.remove("g", &[]).await.is_err());
}

/// A refused multi-step operation leaves every key it touches as it was.
async fn refused_block_operations_change_nothing(env: Env) {
    // Sequences: a wrong-type key in the middle of a batch refuses the whole
    // batch before the keys ahead of it move. On a cluster a batch is atomic
    // per hash slot: there the other slots' keys do move (numbers may skip,
    // never repeat).
    let atomic_across_slots = env.cluster.is_none();
    let seqs = env.cache.keyspace("seq").sequences::<String>(100).unwrap();
    assert_eq!(seqs.next("a").await.unwrap().value, 1);
    env.write_raw(&seqs.key("text"), b"not a hash").await;
    let batch = ["a".to_owned(), "text".to_owned(), "b".to_owned()];
    let err = seqs.next_many(&batch).await.unwrap_err();
    assert!(err.is_wrong_type(), "{err:?}");
    if atomic_across_slots {
        assert_eq!(seqs.current("a").await.unwrap(), Some(1));
        assert_eq!(seqs.current("b").await.unwrap(), None);
    }
    let a_before = seqs.current("a").await.unwrap();

    // Sequences stop at 2^53, where Lua's numbers stop being exact; the call
    // that would pass it changes nothing.
    let err = seqs.seed("top", MAX_SEQUENCE).await.unwrap_err();
    assert!(err.is_config(), "{err:?}");
    assert!(seqs.seed("top", MAX_SEQUENCE - 200).await.unwrap());
    for _ in 0..200 {
        seqs.next("top").await.unwrap();
    }
    assert_eq!(seqs.current("top").await.unwrap(), Some(MAX_SEQUENCE));
    let err = seqs.next("top").await.unwrap_err();
    assert!(matches!(err, Error::Overflow { .. }), "{err:?}");
    let batch = ["a".to_owned(), "top".to_owned()];
    assert!(seqs.next_many(&batch).await.is_err());
    assert_eq!(seqs.current("top").await.unwrap(), Some(MAX_SEQUENCE));
    if atomic_across_slots {
        assert_eq!(seqs.current("a").await.unwrap(), a_before);
    }

    // Locks: a fencing counter that cannot be read refuses the acquisition
    // without taking the lock.
    let locks = env.cache.keyspace("lock").locks::<str>().unwrap();
    let guard = locks
        .try_acquire("job", Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    let (lock_key, fence_key) = (guard.key().to_owned(), format!("{}:fence", guard.key()));
    assert!(guard.release().await.unwrap());
    env.write_raw(&fence_key, b"garbage").await;
    assert!(
        locks
            .try_acquire("job", Duration::from_secs(5))
            .await
            .is_err()
    );
    assert_eq!(env.cache.raw_get(&lock_key).await.unwrap(), None);
    assert_eq!(
        env.cache.raw_get(&fence_key).await.unwrap().as_deref(),
        Some(&b"garbage"[..])
    );

    // Typed sets: adding to a key of another type changes neither it nor its TTL.
    let sets = env
        .cache
        .keyspace("members")
        .ttl(Duration::from_secs(60))
        .typed_set::<u64, String>()
        .unwrap();
    env.write_raw(&sets.key(&1), b"a string").await;
    let err = sets.add(&1, &["ada".to_owned()]).await.unwrap_err();
    assert!(err.is_wrong_type(), "{err:?}");
    assert_eq!(sets.ttl(&1).await.unwrap(), Ttl::Persistent);
    assert_eq!(
        env.cache.raw_get(&sets.key(&1)).await.unwrap().as_deref(),
        Some(&b"a string"[..])
    );
    // Many members at once still go in (the script adds them in slices).
    let many: Vec<String> = (0..2_500).map(|i| format!("m{i}")).collect();
    assert_eq!(sets.add(&2, &many).await.unwrap(), 2_500);
    assert_eq!(sets.len(&2).await.unwrap(), Some(2_500));
}
