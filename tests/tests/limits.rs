//! Rate limits (fixed and sliding windows) and sequence allocators, each
//! test run on the memory backend, a spawned Redis and the cluster.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use cache_core::{RateLimit, Ttl};
use cache_tests::Env;

cache_tests::backend_suite!(
    fixed_window_allows_exactly_the_limit_under_1000_concurrent_hits,
    sliding_window_allows_exactly_the_limit_under_1000_concurrent_hits,
    sliding_window_never_passes_twice_the_limit_at_an_edge,
    rate_limit_decisions_report_count_remaining_and_reset,
    sequences_never_repeat_and_report_each_crossing_once,
    sequences_continue_above_the_persisted_maximum_after_data_loss,
    next_many_pairs_results_with_users,
    current_is_where_the_numbering_stands,
    delete_starts_a_sequence_over,
);

async fn concurrent_hits(env: &Env, rule: RateLimit) -> usize {
    let limiter = env.cache.keyspace("api").rate_limiter::<u64>(rule).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..1_000 {
        let limiter = limiter.clone();
        tasks.push(tokio::spawn(async move {
            limiter.hit(&42).await.unwrap().allowed
        }));
    }
    let mut allowed = 0;
    for task in tasks {
        allowed += usize::from(task.await.unwrap());
    }
    allowed
}

async fn wait_until_allowed(env: &Env, rule: RateLimit, limit: Duration) {
    let limiter = env.cache.keyspace("api").rate_limiter::<u64>(rule).unwrap();
    let started = Instant::now();
    while !limiter.hit(&42).await.unwrap().allowed {
        assert!(started.elapsed() < limit, "still refused after {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn fixed_window_allows_exactly_the_limit_under_1000_concurrent_hits(env: Env) {
    let rule = RateLimit::fixed_window(100, Duration::from_secs(1));
    assert_eq!(concurrent_hits(&env, rule).await, 100);
    wait_until_allowed(&env, rule, Duration::from_secs(3)).await;
    // The counter carries its expiry: it never lives forever.
    let limiter = env.cache.keyspace("api").rate_limiter::<u64>(rule).unwrap();
    let counter = env.cache.keyspace("api").typed::<u64, u64>().unwrap();
    assert!(matches!(counter.ttl(&42).await.unwrap(), Ttl::Expires(_)));
    limiter.reset(&42).await.unwrap();
    assert_eq!(counter.ttl(&42).await.unwrap(), Ttl::Missing);
}

async fn sliding_window_allows_exactly_the_limit_under_1000_concurrent_hits(env: Env) {
    let rule = RateLimit::sliding_window(100, Duration::from_secs(1));
    assert_eq!(concurrent_hits(&env, rule).await, 100);
    wait_until_allowed(&env, rule, Duration::from_secs(3)).await;
}

async fn sliding_window_never_passes_twice_the_limit_at_an_edge(env: Env) {
    let window = Duration::from_millis(600);
    let limiter = env
        .cache
        .keyspace("edge")
        .rate_limiter::<str>(RateLimit::sliding_window(10, window))
        .unwrap();
    // Hits spread over 1.5 windows: any one window must have seen at most 10.
    let mut allowed_at = Vec::new();
    let started = Instant::now();
    while started.elapsed() < window * 3 / 2 {
        if limiter.hit("u").await.unwrap().allowed {
            allowed_at.push(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(allowed_at.len() >= 10, "{} allowed", allowed_at.len());
    for (i, &start) in allowed_at.iter().enumerate() {
        // Allow a little clock slack between this process and the server.
        let inside = allowed_at[i..]
            .iter()
            .take_while(|&&at| at.duration_since(start) < window - Duration::from_millis(20))
            .count();
        assert!(inside <= 10, "{inside} hits passed within one window");
    }
}

async fn rate_limit_decisions_report_count_remaining_and_reset(env: Env) {
    for rule in [
        RateLimit::fixed_window(3, Duration::from_secs(10)),
        RateLimit::sliding_window(3, Duration::from_secs(10)),
    ] {
        let limiter = env
            .cache
            .keyspace("decisions")
            .rate_limiter::<str>(rule)
            .unwrap();
        limiter.reset("u").await.unwrap();
        let first = limiter.hit("u").await.unwrap();
        assert_eq!(
            (first.allowed, first.count, first.remaining),
            (true, 1, 2),
            "{rule:?}"
        );
        assert!(
            first.reset_after > Duration::from_secs(9)
                && first.reset_after <= Duration::from_secs(10)
        );
        limiter.hit("u").await.unwrap();
        limiter.hit("u").await.unwrap();
        let refused = limiter.hit("u").await.unwrap();
        assert!(!refused.allowed, "{rule:?}");
        assert_eq!(refused.remaining, 0);
        assert!(refused.reset_after <= Duration::from_secs(10));
    }
}

async fn sequences_never_repeat_and_report_each_crossing_once(env: Env) {
    let step = 37;
    let seqs = env
        .cache
        .keyspace("msg-seq")
        .sequences::<u64>(step)
        .unwrap();
    let mut tasks = Vec::new();
    for task in 0..50u64 {
        let seqs = seqs.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..200u64 {
                let user = (task + i) % 10;
                got.push((user, seqs.next(&user).await.unwrap()));
            }
            got
        }));
    }
    let mut numbers: HashMap<u64, HashSet<i64>> = HashMap::new();
    let mut crossings: HashMap<u64, Vec<i64>> = HashMap::new();
    for task in tasks {
        for (user, allocation) in task.await.unwrap() {
            assert!(allocation.value <= allocation.reserved_max);
            assert!(
                numbers.entry(user).or_default().insert(allocation.value),
                "{user}: {allocation:?} twice"
            );
            if allocation.crossed {
                crossings
                    .entry(user)
                    .or_default()
                    .push(allocation.reserved_max);
            }
        }
    }
    for user in 0..10u64 {
        let handed = &numbers[&user];
        assert_eq!(handed.len(), 1_000);
        assert_eq!(handed.iter().max(), Some(&1_000));
        // Every block was reported once: maxima step, 2*step, ... past 1000.
        let mut maxima = crossings[&user].clone();
        maxima.sort_unstable();
        let blocks = 1_000_i64.div_euclid(i64::from(step)) + 1;
        let expected: Vec<i64> = (1..=blocks).map(|b| b * i64::from(step)).collect();
        assert_eq!(maxima, expected, "user {user}");
        assert_eq!(seqs.current(&user).await.unwrap(), Some(1_000));
    }
}

async fn sequences_continue_above_the_persisted_maximum_after_data_loss(env: Env) {
    let seqs = env.cache.keyspace("msg-seq").sequences::<u64>(100).unwrap();
    let mut persisted_max = 0;
    for _ in 0..150 {
        let allocation = seqs.next(&7).await.unwrap();
        if allocation.crossed {
            persisted_max = allocation.reserved_max; // what the service writes to its database
        }
    }
    assert_eq!(persisted_max, 200);
    // Redis loses the key (same layout as a typed value, so delete it that way).
    let raw = env.cache.keyspace("msg-seq").typed::<u64, i64>().unwrap();
    assert!(raw.delete(&7).await.unwrap());
    assert_eq!(
        seqs.next(&7).await.unwrap().value,
        1,
        "data really was lost"
    );

    assert!(seqs.seed(&7, persisted_max).await.unwrap());
    let next = seqs.next(&7).await.unwrap();
    assert_eq!(next.value, 201);
    assert!(next.crossed, "the new block is reported for persisting");
    assert_eq!(next.reserved_max, 300);
    assert!(
        !seqs.seed(&7, 50).await.unwrap(),
        "seeding never moves backwards"
    );
    assert_eq!(seqs.next(&7).await.unwrap().value, 202);
}

async fn next_many_pairs_results_with_users(env: Env) {
    let seqs = env
        .cache
        .keyspace("msg-seq")
        .sequences::<String>(10)
        .unwrap();
    for _ in 0..5 {
        seqs.next("bob").await.unwrap();
    }
    let users = [
        "carol".to_owned(),
        "bob".to_owned(),
        "alice".to_owned(),
        "bob".to_owned(),
    ];
    let got = seqs.next_many(&users).await.unwrap();
    let pairs: Vec<(&str, i64)> = got.iter().map(|(u, a)| (u.as_str(), a.value)).collect();
    assert_eq!(pairs, [("carol", 1), ("bob", 6), ("alice", 1), ("bob", 7)]);
}

/// `current` is the number `next` counts up from: the last one handed out,
/// or a seed with none handed out since (as its docs say), on every backend.
async fn current_is_where_the_numbering_stands(env: Env) {
    let seqs = env.cache.keyspace("seq").sequences::<str>(10).unwrap();
    assert_eq!(seqs.current("new").await.unwrap(), None);
    assert!(seqs.seed("restored", 500).await.unwrap());
    assert_eq!(seqs.current("restored").await.unwrap(), Some(500));
    assert_eq!(seqs.next("restored").await.unwrap().value, 501);
    assert_eq!(seqs.current("restored").await.unwrap(), Some(501));
    // A seed below where it stands changes nothing, `current` included.
    assert!(!seqs.seed("restored", 100).await.unwrap());
    assert_eq!(seqs.current("restored").await.unwrap(), Some(501));
}

async fn delete_starts_a_sequence_over(env: Env) {
    let seqs = env.cache.keyspace("seq").sequences::<str>(10).unwrap();
    for _ in 0..12 {
        seqs.next("conversation").await.unwrap();
    }
    seqs.next("other").await.unwrap();
    assert!(seqs.delete("conversation").await.unwrap());
    assert!(!seqs.delete("conversation").await.unwrap());
    assert_eq!(seqs.current("conversation").await.unwrap(), None);
    let first = seqs.next("conversation").await.unwrap();
    assert_eq!(
        (first.value, first.reserved_max, first.crossed),
        (1, 10, true)
    );
    // Other keys keep their numbering.
    assert_eq!(seqs.current("other").await.unwrap(), Some(1));
    // Deleted, then seeded: numbers continue above the seed.
    seqs.delete("conversation").await.unwrap();
    seqs.seed("conversation", 300).await.unwrap();
    assert_eq!(seqs.next("conversation").await.unwrap().value, 301);
}
