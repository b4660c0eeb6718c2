//! Sequence numbers that never repeat, even after Redis loses its data.
//!
//! Each key (a user, a conversation) has a current number and a reserved
//! maximum, handed out in blocks of `step`. When a number crosses the reserved
//! maximum, the allocator reserves the next block and tells that one caller,
//! who persists the new maximum (to its database) before using the number.
//!
//! What holds after Redis loses its data (a restart without persistence, a
//! failover that lost recent writes, a flush): the hash is gone and the next
//! number would be 1 again, below numbers already handed out. Call `seed`
//! with the persisted maximum before handing out numbers again (for example
//! when [`Sequences::current`] returns `None` for a key your database knows);
//! numbers then continue above everything that may have been handed out. The
//! library cannot do this by itself: only your database knows the maximum.
//!
//! Sequence hashes are the one kind of key this toolkit writes without an
//! expiry: an expiring hash would restart numbering just like a data loss.
//! There is one hash per key that ever got a number.

use std::borrow::Borrow;

use super::{block_basics, block_key, on_one_key};
use crate::backend::ops::sequence::{Allocate, Current, Seed};
use crate::engine::KeyspaceSettings;
use crate::engine::Scope;
use crate::error::{Error, Result};
use crate::key::CacheKey;

pub use crate::backend::ops::sequence::MAX_SEQUENCE;

/// One number handed out by a [`Sequences`] allocator.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
/// let seqs = cache_core::Cache::memory().keyspace("seq").sequences::<u64>(1000)?;
/// let allocation = seqs.next(&7).await?;
/// if allocation.crossed {
///     // UPDATE users SET seq_max = allocation.reserved_max WHERE id = 7
/// }
/// assert_eq!(allocation.value, 1);
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// The number: greater than every number handed out before for this key.
    pub value: i64,
    /// The reserved maximum after this call.
    pub reserved_max: i64,
    /// True for exactly one call per block: persist `reserved_max` before
    /// using `value`.
    pub crossed: bool,
}

/// Per-key sequence allocators. Made by
/// [`KeyspaceBuilder::sequences`](crate::KeyspaceBuilder::sequences).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
/// let seqs = cache_core::Cache::memory().keyspace("msg-seq").sequences::<u64>(100)?;
/// let first = seqs.next(&7).await?;
/// assert_eq!((first.value, first.reserved_max, first.crossed), (1, 100, true));
/// // ... persist 100 as user 7's maximum, then use number 1.
/// let second = seqs.next(&7).await?;
/// assert_eq!((second.value, second.crossed), (2, false));
///
/// // After Redis lost its data: continue above the persisted maximum.
/// seqs.seed(&7, 100).await?;
/// # Ok(()) }
/// ```
pub struct Sequences<K: ?Sized> {
    scope: Scope<K>,
    step: i64,
}

block_basics!(Sequences<K> { step });
block_key!(Sequences<K>
    r#"```
# fn main() -> cache_core::Result<()> {
let seqs = cache_core::Cache::memory().keyspace("seq").sequences::<u64>(10)?;
assert_eq!(seqs.key(&7), "seq:v1:7");
# Ok(()) }
```"#
);

impl<K: CacheKey + ?Sized> Sequences<K> {
    pub(crate) fn new(keyspace: KeyspaceSettings, step: u32) -> Result<Self> {
        if step == 0 {
            return Err(Error::config("sequences: the step must be at least 1"));
        }
        Ok(Sequences {
            scope: Scope::new(&keyspace),
            step: i64::from(step),
        })
    }

    /// The next number for `key`.
    ///
    /// # Errors
    /// [`Error::WrongType`] when the key holds something else,
    /// [`Error::Overflow`] when the number or its block would pass
    /// [`MAX_SEQUENCE`] (nothing is changed), backend or timeout errors (then
    /// no number was handed out, or, after a connection error or timeout,
    /// possibly one that nobody received: numbers may skip, never repeat).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let seqs = cache_core::Cache::memory().keyspace("seq").sequences::<str>(2)?;
    /// let crossings: Vec<bool> = [
    ///     seqs.next("a").await?, seqs.next("a").await?, seqs.next("a").await?,
    /// ].iter().map(|a| a.crossed).collect();
    /// assert_eq!(crossings, [true, false, true]);
    /// # Ok(()) }
    /// ```
    pub async fn next<Q>(&self, key: &Q) -> Result<Allocation>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let full_key = self.scope.key(key);
        let mut all = self.allocate(std::slice::from_ref(&full_key)).await?;
        all.pop()
            .ok_or_else(|| Error::config("sequence script returned nothing"))
    }

    /// The next number for each key in one round trip (one atomic script),
    /// paired with its key. A key listed twice gets two numbers. On a
    /// cluster: one script per hash slot, concurrently, each atomic; a refused
    /// key stops the keys of its slot, while other slots' keys may have moved
    /// (numbers can skip, never repeat).
    ///
    /// # Errors
    /// [`Error::Config`] for an empty list, and as [`next`](Self::next); a
    /// refused call changes no key.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let seqs = cache_core::Cache::memory().keyspace("seq").sequences::<u64>(10)?;
    /// seqs.next(&2).await?;
    /// let got = seqs.next_many(&[1, 2]).await?;
    /// assert_eq!(got[0].0, 1);
    /// assert_eq!(got[0].1.value, 1);
    /// assert_eq!((got[1].0, got[1].1.value), (2, 2));
    /// assert!(seqs.next_many(&[]).await.is_err());
    /// # Ok(()) }
    /// ```
    pub async fn next_many(&self, keys: &[K]) -> Result<Vec<(K, Allocation)>>
    where
        K: Clone + Sized,
    {
        if keys.is_empty() {
            return Err(Error::config(
                "next_many needs at least one key; got an empty list",
            ));
        }
        let full_keys: Vec<String> = keys.iter().map(|key| self.scope.key(key)).collect();
        let allocations = self.allocate(&full_keys).await?;
        Ok(keys.iter().cloned().zip(allocations).collect())
    }

    /// One script per group of keys that can share one (all keys, or on a
    /// cluster one hash slot each), concurrently; results in the callers' order.
    async fn allocate(&self, full_keys: &[String]) -> Result<Vec<Allocation>> {
        let backend = self.scope.engine.backend();
        let groups = backend.slot_groups(full_keys.iter().map(String::as_str));
        let runs = groups.iter().map(|positions| async move {
            let keys: Vec<String> = positions
                .iter()
                .filter_map(|&at| full_keys.get(at).cloned())
                .collect();
            let next = Allocate {
                keys: &keys,
                step: self.step,
            };
            backend.run(&next).await
        });
        let answers = futures_util::future::try_join_all(runs).await?;
        let mut allocations = vec![None; full_keys.len()];
        for (positions, numbers) in groups.iter().zip(answers) {
            for (&at, (value, reserved_max, crossed)) in positions.iter().zip(numbers) {
                if let Some(slot) = allocations.get_mut(at) {
                    *slot = Some(Allocation {
                        value,
                        reserved_max,
                        crossed,
                    });
                }
            }
        }
        allocations
            .into_iter()
            .map(|allocation| {
                allocation
                    .ok_or_else(|| Error::config("a sequence script answered too few numbers"))
            })
            .collect()
    }

    /// Where `key`'s numbering stands: the number the next [`next`](Self::next)
    /// counts up from. That is the last number handed out, or, right after a
    /// [`seed`](Self::seed) with none handed out since, the seed itself (a
    /// number never handed out: the next one is the seed plus one). `None`
    /// for a sequence that has neither.
    ///
    /// # Errors
    /// [`Error::WrongType`], backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let seqs = cache_core::Cache::memory().keyspace("seq").sequences::<u64>(10)?;
    /// assert_eq!(seqs.current(&1).await?, None);
    /// seqs.next(&1).await?;
    /// assert_eq!(seqs.current(&1).await?, Some(1));
    /// // After a seed: the seed, until the next number is handed out.
    /// seqs.seed(&2, 500).await?;
    /// assert_eq!(seqs.current(&2).await?, Some(500));
    /// assert_eq!(seqs.next(&2).await?.value, 501);
    /// assert_eq!(seqs.current(&2).await?, Some(501));
    /// # Ok(()) }
    /// ```
    pub async fn current<Q>(&self, key: &Q) -> Result<Option<i64>>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let full_key = self.scope.key(key);
        self.scope
            .engine
            .backend()
            .run(&Current { key: &full_key })
            .await
    }

    /// Re-seeds `key` after a data loss: numbers continue above
    /// `persisted_max`, and the next call reports a crossing. Never moves a
    /// sequence backwards; returns whether it changed anything.
    ///
    /// # Errors
    /// [`Error::Config`] when `persisted_max` leaves no room for one block
    /// below [`MAX_SEQUENCE`]; [`Error::WrongType`], backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let seqs = cache_core::Cache::memory().keyspace("seq").sequences::<u64>(10)?;
    /// assert!(seqs.seed(&1, 500).await?);
    /// let next = seqs.next(&1).await?;
    /// assert_eq!((next.value, next.reserved_max, next.crossed), (501, 510, true));
    /// assert!(!seqs.seed(&1, 100).await?); // never backwards
    /// # Ok(()) }
    /// ```
    pub async fn seed<Q>(&self, key: &Q, persisted_max: i64) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let full_key = self.scope.key(key);
        if persisted_max > MAX_SEQUENCE - self.step {
            return Err(Error::config(format!(
                "seed of `{full_key}`: {persisted_max} leaves no room for a block of {} below \
                 the limit of sequences, 2^53",
                self.step
            )));
        }
        let seed = Seed {
            key: &full_key,
            persisted_max,
        };
        self.scope.engine.backend().run(&seed).await
    }

    on_one_key! {
        /// Removes the sequence of `key`: the next [`next`](Self::next) hands
        /// out 1 again, with a crossing. Numbers then repeat, so this is for a
        /// key whose numbers are no longer in use (a deleted conversation, a
        /// test); to continue above a persisted maximum, [`seed`](Self::seed)
        /// after it. Returns whether there was a sequence.
        ///
        /// # Errors
        /// Backend or timeout errors.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
        /// let seqs = cache_core::Cache::memory().keyspace("seq").sequences::<u64>(10)?;
        /// seqs.next(&1).await?;
        /// seqs.next(&1).await?;
        /// assert!(seqs.delete(&1).await?);
        /// assert_eq!(seqs.current(&1).await?, None);
        /// assert_eq!(seqs.next(&1).await?.value, 1);
        /// # Ok(()) }
        /// ```
        pub async fn delete -> bool = delete
    }
}
