//! Batch cache-aside: `get_or_load_many`, one read round trip for every key,
//! one loader call for the keys that are missing, single flight per key.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tracing::Instrument;

use super::load::{Joined, Outcome, wait};
use super::policy::FailurePolicy;
use crate::error::{BoxError, Error, Result};
use crate::key::CacheKey;
use crate::stats::bump;
use crate::ttl::Ttl;
use crate::typed::TypedCache;

/// What the one read found for a distinct key.
enum Read<V> {
    /// The value, its bytes (to decode again for a repeated key) and its
    /// remaining TTL (`Persistent` when not read).
    Hit(V, Vec<u8>, Ttl),
    Absent,
    /// Missing; `true` when what was there did not decode (heal it).
    Missing(bool),
}

/// A distinct key's answer: known now, or the flight to wait for.
enum Answer<V> {
    Ready(Option<V>, Option<Vec<u8>>),
    Pending(watch::Receiver<Option<Outcome>>),
}

/// The keys this call loads itself: their key, full key, sender, and
/// whether an undecodable value must be healed.
struct Leader<K> {
    key: K,
    full_key: String,
    sender: watch::Sender<Option<Outcome>>,
    heal: bool,
}

impl<K, V> TypedCache<K, V>
where
    K: CacheKey + Clone + Eq + Hash + Send + Sync + 'static,
    V: Serialize + DeserializeOwned + Send + 'static,
{
    /// Reads many keys in one round trip; calls `loader` once with the keys
    /// that are missing (and that no concurrent load, of this or a
    /// `get_or_load` call, is already loading: those are awaited), stores what
    /// it returns in one round trip with the keyspace's TTL and jitter, and
    /// returns every value in the order of `keys`.
    ///
    /// - A key listed twice is read and loaded once, and answered at both places.
    /// - `loader` gets each missing key once, and returns what it found as
    ///   `(key, value)` pairs (a `HashMap` will do); keys it does not return are
    ///   absent (cached as such with a
    ///   [`negative_ttl`](crate::LoadPolicy::negative_ttl)); pairs for keys it
    ///   was not asked for are ignored.
    /// - The local tier is consulted first and filled; values that no longer
    ///   decode are reloaded and replaced (removed when the loader finds
    ///   nothing); every key counts as a hit, miss, negative hit or coalesced
    ///   wait, and each loader call as one load.
    /// - Redis errors follow the [`FailurePolicy`]: fail-open (the default)
    ///   treats every key as missing, answers from the loader and writes back
    ///   afterwards, best effort; fail-closed returns the error.
    /// - With [`early_refresh`](crate::LoadPolicy::early_refresh), keys found
    ///   with little of their TTL left are served, and reloaded in the
    ///   background in the same single loader call as the missing keys (the
    ///   read is then one pipeline of GET and PTTL per slot).
    /// - No loader call when every key is found fresh, and no call at all for
    ///   an empty `keys`. On a cluster the read and the write-back are one
    ///   command per hash slot.
    /// - Single flight is per process, and with the `distributed` policy
    ///   across processes too: each missing key's lease is taken as
    ///   `get_or_load` takes it; keys another process is loading are awaited
    ///   (up to the policy's `wait`) instead of loaded.
    ///
    /// # Errors
    /// With fail-closed, backend and timeout errors of the read. Always:
    /// [`Error::Load`] naming the first key whose load failed (the loader's
    /// error, shared with every caller waiting for those keys and never
    /// cached), or whose loaded value cannot be stored.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// use std::collections::HashMap;
    /// let prices = cache_core::Cache::memory().keyspace("price").typed::<String, f64>()?;
    /// prices.set("gpt-4", &0.03).await?;
    /// let models = ["gpt-4".to_owned(), "gpt-4o".to_owned(), "nope".to_owned()];
    /// let got = prices
    ///     .get_or_load_many(&models, |missing| async move {
    ///         assert_eq!(missing, ["gpt-4o".to_owned(), "nope".to_owned()]);
    ///         // SELECT model, price FROM prices WHERE model = ANY($1)
    ///         HashMap::from([("gpt-4o".to_owned(), 0.005)])
    ///     })
    ///     .await?;
    /// assert_eq!(got, [Some(0.03), Some(0.005), None]);
    /// # Ok(()) }
    /// ```
    pub async fn get_or_load_many<F, Fut, I>(&self, keys: &[K], loader: F) -> Result<Vec<Option<V>>>
    where
        F: FnOnce(Vec<K>) -> Fut + Send + 'static,
        Fut: Future<Output = I> + Send + 'static,
        I: IntoIterator<Item = (K, V)> + Send + 'static,
    {
        let loader =
            move |keys| async move { Ok::<_, std::convert::Infallible>(loader(keys).await) };
        self.try_get_or_load_many(keys, loader).await
    }

    /// [`get_or_load_many`](Self::get_or_load_many) with a loader that can
    /// fail: its error is returned as [`Error::Load`] to this caller and to
    /// every caller waiting for one of its keys, and nothing is cached.
    ///
    /// # Errors
    /// As [`get_or_load_many`](Self::get_or_load_many).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let prices = cache_core::Cache::memory().keyspace("price").typed::<String, f64>()?;
    /// let err = prices
    ///     .try_get_or_load_many(&["gpt-4".to_owned()], |_| async {
    ///         Err::<Vec<(String, f64)>, _>("database down")
    ///     })
    ///     .await
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("database down"));
    /// # Ok(()) }
    /// ```
    pub async fn try_get_or_load_many<F, Fut, I, E>(
        &self,
        keys: &[K],
        loader: F,
    ) -> Result<Vec<Option<V>>>
    where
        F: FnOnce(Vec<K>) -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<I, E>> + Send + 'static,
        I: IntoIterator<Item = (K, V)> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let span = self.span("get_or_load_many");
        self.load_many(keys, loader).instrument(span).await
    }

    async fn load_many<F, Fut, I, E>(&self, keys: &[K], loader: F) -> Result<Vec<Option<V>>>
    where
        F: FnOnce(Vec<K>) -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<I, E>> + Send + 'static,
        I: IntoIterator<Item = (K, V)> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        // Distinct keys, in first-seen order; `place[i]` is key i's distinct index.
        let mut full_keys: Vec<Option<String>> =
            keys.iter().map(|key| Some(self.layout.key(key))).collect();
        let mut firsts = Vec::with_capacity(keys.len());
        let mut place = Vec::with_capacity(keys.len());
        {
            let mut index: HashMap<&str, usize> = HashMap::with_capacity(keys.len());
            for (i, full_key) in full_keys.iter().enumerate() {
                let next = firsts.len();
                let at = *index
                    .entry(full_key.as_deref().unwrap_or_default())
                    .or_insert(next);
                if at == next {
                    firsts.push(i);
                }
                place.push(at);
            }
        }
        let repeated = firsts.len() < keys.len();
        let distinct: Vec<(K, String)> = firsts
            .iter()
            .filter_map(|&i| Some((keys.get(i)?.clone(), full_keys.get_mut(i)?.take()?)))
            .collect();
        let (reads, degraded) = self.read_many(&distinct, repeated).await?;

        let counters = self.cache.counters();
        let mut answers: Vec<Answer<V>> = Vec::with_capacity(distinct.len());
        let mut leaders = Vec::new();
        for ((key, full_key), read) in distinct.iter().zip(reads) {
            let heal = match read {
                Read::Hit(value, bytes, ttl) => {
                    bump(&counters.hits);
                    answers.push(Answer::Ready(Some(value), Some(bytes)));
                    // Served now; reloaded in the same loader call, in the
                    // background, unless a load of it is already running.
                    if self.wants_refresh(ttl)
                        && let Joined::Leader(sender, _) = self.cache.flights().join(full_key)
                    {
                        bump(&counters.refreshes);
                        leaders.push(Leader {
                            key: key.clone(),
                            full_key: full_key.clone(),
                            sender,
                            heal: false,
                        });
                    }
                    continue;
                }
                Read::Absent => {
                    bump(&counters.negative_hits);
                    answers.push(Answer::Ready(None, None));
                    continue;
                }
                Read::Missing(heal) => heal,
            };
            bump(&counters.misses);
            match self.cache.flights().join(full_key) {
                Joined::Leader(sender, receiver) => {
                    leaders.push(Leader {
                        key: key.clone(),
                        full_key: full_key.clone(),
                        sender,
                        heal,
                    });
                    answers.push(Answer::Pending(receiver));
                }
                Joined::Waiter(receiver) => {
                    bump(&counters.coalesced_waits);
                    answers.push(Answer::Pending(receiver));
                }
            }
        }
        if !leaders.is_empty() {
            self.spawn_load_many(leaders, loader, degraded);
        }
        let mut ready = Vec::with_capacity(answers.len());
        for ((_, full_key), answer) in distinct.iter().zip(answers) {
            ready.push(match answer {
                Answer::Ready(value, bytes) => (value, bytes),
                Answer::Pending(receiver) => match wait(receiver).await {
                    Ok(Some(bytes)) if repeated => {
                        (self.decode(full_key, Some(bytes.clone()))?, Some(bytes))
                    }
                    Ok(Some(bytes)) => (self.decode(full_key, Some(bytes))?, None),
                    Ok(None) => (None, None),
                    Err(source) => {
                        return Err(Error::Load {
                            key: full_key.clone(),
                            source,
                        });
                    }
                },
            });
        }
        if !repeated {
            return Ok(ready.into_iter().map(|(value, _)| value).collect());
        }
        // Each caller's position gets its distinct key's value; a key listed
        // more than once is decoded again for its earlier places (V need not
        // be Clone), its last place takes the decoded value.
        let mut left = vec![0_usize; distinct.len()];
        for &at in &place {
            if let Some(count) = left.get_mut(at) {
                *count += 1;
            }
        }
        let mut out = Vec::with_capacity(place.len());
        for &at in &place {
            let (Some(count), Some((value, bytes)), Some((_, full_key))) =
                (left.get_mut(at), ready.get_mut(at), distinct.get(at))
            else {
                out.push(None);
                continue;
            };
            *count -= 1;
            out.push(match (*count, bytes) {
                (0, _) => value.take(),
                (_, Some(bytes)) => self.decode(full_key, Some(bytes.clone()))?,
                (_, None) => None,
            });
        }
        Ok(out)
    }

    /// The one read: local copies first, then one MGET (per slot on a
    /// cluster) of the rest and, with negative caching, of their "absent"
    /// markers. Returns what each key holds, and whether Redis failed.
    async fn read_many(
        &self,
        distinct: &[(K, String)],
        repeated: bool,
    ) -> Result<(Vec<Read<V>>, bool)> {
        let counters = self.cache.counters();
        // Bytes are kept only to decode a repeated key again.
        let keep = |bytes: &[u8]| if repeated { bytes.to_vec() } else { Vec::new() };
        let mut reads: Vec<Option<Read<V>>> = Vec::with_capacity(distinct.len());
        let mut read_keys = Vec::new();
        for (_, full_key) in distinct {
            let local = self.local.get(full_key);
            match local.map(|bytes| (self.format.decode::<V>(&bytes), bytes)) {
                Some((Ok(value), bytes)) => {
                    bump(&counters.local_hits);
                    // Early refresh is driven by the backend's TTL, seen on backend reads.
                    reads.push(Some(Read::Hit(value, keep(&bytes), Ttl::Persistent)));
                }
                _ => {
                    read_keys.push(full_key.clone());
                    reads.push(None);
                }
            }
        }
        if read_keys.is_empty() {
            return Ok((reads.into_iter().flatten().collect(), false));
        }
        let wanted_len = read_keys.len();
        let negative = self.load.negative_ttl.is_some();
        if negative {
            for at in 0..wanted_len {
                let marker = read_keys
                    .get(at)
                    .map(|key| self.absent.key_of_full(key, &self.layout));
                read_keys.extend(marker);
            }
        }
        let wanted = read_keys.get(..wanted_len).unwrap_or_default();
        let backend = self.cache.backend();
        let (found, degraded) = match backend.within(self.fetch_many(wanted, &read_keys)).await {
            Ok(found) => (found, false),
            Err(error) if self.load.failure == FailurePolicy::Closed => return Err(error),
            // Fail-open: the error is counted; every key is a miss.
            Err(_) => (vec![None; read_keys.len()], true),
        };
        let (values, markers) = found.split_at(wanted_len.min(found.len()));
        let mut fetched = values.iter().zip(wanted).enumerate();
        for slot in reads.iter_mut().filter(|slot| slot.is_none()) {
            let Some((at, (read, full_key))) = fetched.next() else {
                break;
            };
            *slot = Some(match read {
                Some((bytes, ttl)) => match self.format.decode::<V>(bytes) {
                    Ok(value) => {
                        self.local.fetched(full_key, bytes);
                        Read::Hit(value, keep(bytes), *ttl)
                    }
                    Err(_) => {
                        bump(&counters.decode_errors);
                        self.local.written(full_key, None);
                        Read::Missing(true)
                    }
                },
                None if negative && markers.get(at).is_some_and(Option::is_some) => Read::Absent,
                None => Read::Missing(false),
            });
        }
        let reads = reads
            .into_iter()
            .map(|read| read.unwrap_or(Read::Missing(false)));
        Ok((reads.collect(), degraded))
    }

    /// Values (with their TTL when early refresh needs it) of `wanted`, and
    /// after them "absent" markers for the rest of `read_keys`, as (bytes,
    /// TTL) pairs: one MGET (per slot on a cluster), or with early refresh
    /// one pipeline of GET and PTTL per slot next to one MGET of the markers.
    async fn fetch_many(
        &self,
        wanted: &[String],
        read_keys: &[String],
    ) -> Result<Vec<Option<(Vec<u8>, Ttl)>>> {
        let backend = self.cache.backend();
        let with_ttl = |found: Vec<Option<Vec<u8>>>| {
            found
                .into_iter()
                .map(|bytes| bytes.map(|bytes| (bytes, Ttl::Persistent)))
                .collect::<Vec<_>>()
        };
        if self.load.early_refresh.is_none() {
            return Ok(with_ttl(backend.get_many(read_keys).await?));
        }
        let markers = read_keys.get(wanted.len()..).unwrap_or_default();
        let (mut values, markers) = futures_util::future::try_join(
            backend.get_many_with_ttl(wanted),
            backend.get_many(markers),
        )
        .await?;
        values.extend(with_ttl(markers));
        Ok(values)
    }

    /// Runs the loader once for `leaders` in a task of its own (a caller that
    /// gives up does not strand the others), stores what it found and
    /// answers every key's flight.
    fn spawn_load_many<F, Fut, I, E>(&self, leaders: Vec<Leader<K>>, loader: F, degraded: bool)
    where
        F: FnOnce(Vec<K>) -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<I, E>> + Send + 'static,
        I: IntoIterator<Item = (K, V)> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let this = self.clone();
        let span = self.load_span();
        tokio::spawn(
            async move {
                let counters = this.cache.counters();
                // Across processes: keys another process is loading are
                // waited for, not loaded (with the distributed policy).
                let mut degraded = degraded;
                let mut shared: Vec<Option<Outcome>> = vec![None; leaders.len()];
                let mut leases = Vec::new();
                if let (Some(flight), false) = (this.load.distributed, degraded) {
                    let split = this.share_flights(&leaders, flight, &mut shared, &mut leases);
                    degraded = split.await.is_err();
                }
                let mine: Vec<&Leader<K>> = leaders
                    .iter()
                    .zip(&shared)
                    .filter(|(_, found)| found.is_none())
                    .map(|(leader, _)| leader)
                    .collect();
                let mut loaded: Vec<Outcome> = Vec::new();
                if !mine.is_empty() {
                    bump(&counters.loads);
                    let asked: Vec<K> = mine.iter().map(|leader| leader.key.clone()).collect();
                    loaded = match loader(asked).await {
                        Ok(found) => this.encode_found(&mine, found),
                        Err(error) => {
                            bump(&counters.load_errors);
                            let failure: Arc<dyn std::error::Error + Send + Sync> =
                                Arc::from(error.into());
                            mine.iter().map(|_| Err(Arc::clone(&failure))).collect()
                        }
                    };
                }
                let mut fresh = loaded.iter();
                let outcomes: Vec<Outcome> = shared
                    .into_iter()
                    .map(|found| found.or_else(|| fresh.next().cloned()).unwrap_or(Ok(None)))
                    .collect();
                if degraded {
                    // Redis failed: answer now, store afterwards, best effort.
                    for (leader, outcome) in leaders.iter().zip(&outcomes) {
                        let _ = leader.sender.send(Some(outcome.clone()));
                    }
                }
                this.store_many(&mine, &loaded).await;
                for lease in leases {
                    let _ = lease.release().await;
                }
                for (leader, outcome) in leaders.iter().zip(outcomes) {
                    this.cache.flights().finish(&leader.full_key);
                    if !degraded {
                        let _ = leader.sender.send(Some(outcome));
                    }
                }
            }
            .instrument(span),
        );
    }

    /// Distributed single flight for a batch: takes each key's lease (as
    /// `get_or_load` does); keys whose lease another process holds, and keys
    /// that turn out to be stored by now, get their answer from Redis (polled
    /// until the policy's `wait`); what is still missing then is this
    /// process's to load. Held leases go to `leases`, to release after the
    /// write-back. An error means Redis failed: load the rest without it.
    async fn share_flights(
        &self,
        leaders: &[Leader<K>],
        flight: crate::DistributedFlight,
        shared: &mut [Option<Outcome>],
        leases: &mut Vec<crate::lease::Lease>,
    ) -> Result<()> {
        let acquire = leaders.iter().map(|leader| {
            let key = self.lock.tagged_key(&leader.key);
            crate::lease::Lease::acquire(&self.cache, key, flight.lease)
        });
        let mut waiting = Vec::new();
        for (at, acquired) in futures_util::future::try_join_all(acquire)
            .await?
            .into_iter()
            .enumerate()
        {
            match acquired {
                Some((lease, _)) => leases.push(lease),
                None => waiting.push(at),
            }
        }
        // Another process may have loaded between our miss and the lease.
        let mut pending: Vec<usize> = (0..leaders.len()).collect();
        let deadline = std::time::Instant::now() + flight.wait;
        loop {
            let keys: Vec<&str> = pending
                .iter()
                .filter_map(|&at| leaders.get(at).map(|leader| leader.full_key.as_str()))
                .collect();
            let found = self.reread(&keys).await?;
            for (&at, found) in pending.iter().zip(found) {
                if let (Some(found), Some(slot)) = (found, shared.get_mut(at)) {
                    bump(&self.cache.counters().coalesced_waits);
                    *slot = Some(Ok(found));
                }
            }
            // Keys whose lease we hold are ours to load; wait for the others.
            pending = waiting
                .iter()
                .copied()
                .filter(|&at| shared.get(at).is_some_and(Option::is_none))
                .collect();
            if pending.is_empty() || std::time::Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// What Redis holds now for each full key: `Some(Some(bytes))` a value,
    /// `Some(None)` a cached absence, `None` nothing yet.
    async fn reread(&self, full_keys: &[&str]) -> Result<Vec<Option<Option<Vec<u8>>>>> {
        let mut read_keys: Vec<String> = full_keys.iter().map(|key| (*key).to_owned()).collect();
        let negative = self.load.negative_ttl.is_some();
        if negative {
            let markers = full_keys
                .iter()
                .map(|key| self.absent.key_of_full(key, &self.layout));
            read_keys.extend(markers.collect::<Vec<_>>());
        }
        let found = self.cache.backend().get_many(&read_keys).await?;
        let (values, markers) = found.split_at(full_keys.len().min(found.len()));
        Ok(values
            .iter()
            .enumerate()
            .map(|(at, value)| match value {
                Some(bytes) => Some(Some(bytes.clone())),
                None if negative && markers.get(at).is_some_and(Option::is_some) => Some(None),
                None => None,
            })
            .collect())
    }

    /// Each leader's outcome: its value encoded (checked as `set` checks),
    /// or absent; pairs for keys nobody asked for are ignored.
    fn encode_found<I>(&self, leaders: &[&Leader<K>], found: I) -> Vec<Outcome>
    where
        I: IntoIterator<Item = (K, V)>,
    {
        let mut found: HashMap<K, V> = found.into_iter().collect();
        let max = self.cache.max_value_size();
        leaders
            .iter()
            .map(|leader| match found.remove(&leader.key) {
                Some(value) => self
                    .format
                    .encode_for(&leader.full_key, &value, max)
                    .map(Some)
                    .map_err(|error| Arc::new(error) as Arc<dyn std::error::Error + Send + Sync>),
                None => Ok(None),
            })
            .collect()
    }

    /// Writes back what was loaded in one round trip (per slot on a
    /// cluster): values with the keyspace's TTL and jitter, "absent" markers
    /// with the negative TTL, and removes healed keys the loader did not find.
    async fn store_many(&self, leaders: &[&Leader<K>], outcomes: &[Outcome]) {
        let mut writes: Vec<(String, Vec<u8>, Option<Duration>)> = Vec::new();
        let mut removals = Vec::new();
        for (leader, outcome) in leaders.iter().zip(outcomes) {
            match outcome {
                Ok(Some(bytes)) => {
                    let ttl = self.ttl.map(|ttl| self.load.jittered(ttl));
                    writes.push((leader.full_key.clone(), bytes.clone(), ttl));
                }
                Ok(None) => {
                    if leader.heal {
                        removals.push(leader.full_key.clone());
                    }
                    if let Some(ttl) = self.load.negative_ttl {
                        let marker = self.absent.key_of_full(&leader.full_key, &self.layout);
                        writes.push((marker, b"1".to_vec(), Some(self.load.jittered(ttl))));
                    }
                }
                Err(_) => {}
            }
        }
        let backend = self.cache.backend();
        if !removals.is_empty()
            && let Err(error) = backend.delete_many(&removals).await
        {
            tracing::debug!(%error, "removing undecodable values failed");
        }
        if writes.is_empty() {
            return;
        }
        // Copies for the local tier only when there is one.
        let local_copies: Vec<(String, Vec<u8>)> = match self.local.is_on() {
            true => writes
                .iter()
                .map(|(key, bytes, _)| (key.clone(), bytes.clone()))
                .collect(),
            false => Vec::new(),
        };
        match backend.set_many(writes).await {
            Ok(()) => {
                for (full_key, bytes) in &local_copies {
                    self.local.written(full_key, Some(bytes));
                }
            }
            Err(error) => tracing::debug!(%error, "write-back after load failed"),
        }
    }
}
