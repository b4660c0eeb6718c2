//! Batch cache-aside: `get_or_load_many`, one read round trip for every key,
//! one loader call for the keys that are missing, single flight per key.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::policy::FailurePolicy;
use crate::engine::flight::{self, FlightGuard, Joined, Outcome, Waiting};
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
    Pending(Waiting),
}

/// Who loads a key of a distributed batch.
enum Claim {
    /// This process: it holds the lease, or Redis failed.
    Load,
    /// Another process holds the lease: wait for its value.
    Elsewhere,
    /// Stored meanwhile: a value, or `None` for a cached absence.
    Found(Option<Vec<u8>>),
}

/// A key this call loads itself: its flight, and whether an undecodable
/// value must be healed.
struct Leader<K> {
    key: K,
    flight: FlightGuard,
    heal: bool,
}

impl<K> Leader<K> {
    fn full_key(&self) -> &str {
        self.flight.key()
    }

    /// Ends this key's flight with `outcome`.
    fn answer(self, outcome: Outcome) {
        self.flight.complete(outcome);
    }
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
    ///   (up to the policy's `wait`) instead of loaded, while this call's own
    ///   keys are loaded at once. A key still not stored after `wait` is
    ///   loaded by this call if it had nothing else to load; otherwise (the
    ///   one loader call has run) the call fails with [`Error::Load`] naming
    ///   it, and the rest is stored all the same.
    ///
    /// # Errors
    /// With fail-closed, backend and timeout errors of the read. Always:
    /// [`Error::Load`] naming the first key whose load failed (the loader's
    /// error, shared with every caller waiting for those keys and never
    /// cached), whose loaded value cannot be stored, or that another process
    /// kept loading past the distributed policy's `wait`.
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
        let epoch = self.cache.flights().epoch();
        let (reads, degraded) = self.read_many(&distinct, repeated).await?;

        let counters = self.counters();
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
                        && let Some(flight) = self.cache.flights().lead(full_key)
                    {
                        bump(&counters.refreshes);
                        leaders.push(Leader {
                            key: key.clone(),
                            flight,
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
                Joined::Leader(flight, waiting) => {
                    let key = key.clone();
                    leaders.push(Leader { key, flight, heal });
                    answers.push(Answer::Pending(waiting));
                }
                Joined::Waiter(waiting) => {
                    bump(&counters.coalesced_waits);
                    answers.push(Answer::Pending(waiting));
                }
            }
        }
        if !leaders.is_empty() {
            // A flight that finished while our read was out may have stored
            // some of these keys: read them again before loading.
            let reread = !degraded && self.cache.flights().retired_since(epoch);
            self.spawn_load_many(leaders, loader, degraded, reread);
        }
        let mut ready = Vec::with_capacity(answers.len());
        for ((_, full_key), answer) in distinct.iter().zip(answers) {
            ready.push(match answer {
                Answer::Ready(value, bytes) => (value, bytes),
                Answer::Pending(waiting) => match waiting.outcome().await {
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
        let counters = self.counters();
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
        let tickets: Vec<_> = wanted.iter().map(|key| self.local.ticket(key)).collect();
        let backend = self.cache.backend();
        let (found, degraded) = match backend.within(self.fetch_many(wanted, &read_keys)).await {
            Ok(found) => (found, false),
            Err(error) if self.load.failure == FailurePolicy::Closed => return Err(error),
            // Fail-open: the error is counted; every key is a miss.
            Err(_) => (vec![None; read_keys.len()], true),
        };
        let (values, markers) = found.split_at(wanted_len.min(found.len()));
        let mut fetched = values.iter().zip(wanted.iter().zip(tickets)).enumerate();
        for slot in reads.iter_mut().filter(|slot| slot.is_none()) {
            let Some((at, (read, (full_key, ticket)))) = fetched.next() else {
                break;
            };
            *slot = Some(match read {
                Some((bytes, ttl)) => match self.format.decode::<V>(bytes) {
                    Ok(value) => {
                        self.local.fetched(full_key, bytes, *ttl, ticket);
                        Read::Hit(value, keep(bytes), *ttl)
                    }
                    Err(_) => {
                        bump(&counters.decode_errors);
                        self.local.written(full_key);
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
        // The TTL caps a local copy's life, and drives early refresh.
        if self.load.early_refresh.is_none() && !self.local.is_on() {
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
    fn spawn_load_many<F, Fut, I, E>(
        &self,
        leaders: Vec<Leader<K>>,
        loader: F,
        degraded: bool,
        reread: bool,
    ) where
        F: FnOnce(Vec<K>) -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<I, E>> + Send + 'static,
        I: IntoIterator<Item = (K, V)> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let this = self.clone();
        let span = self.load_span();
        tokio::spawn(
            async move {
                let leaders = if reread {
                    this.not_stored_meanwhile(leaders).await
                } else {
                    leaders
                };
                if !leaders.is_empty() {
                    this.run_load_many(leaders, loader, degraded).await;
                }
            }
            .instrument(span),
        );
    }

    /// The body of [`spawn_load_many`](Self::spawn_load_many). With the
    /// distributed policy, keys another process holds the lease of are
    /// waited for while this process loads its own: waiting first, with our
    /// leases held, could wait on a process that waits on us.
    async fn run_load_many<F, Fut, I, E>(&self, leaders: Vec<Leader<K>>, loader: F, degraded: bool)
    where
        F: FnOnce(Vec<K>) -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<I, E>> + Send + 'static,
        I: IntoIterator<Item = (K, V)> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let Some(flight) = self.load.distributed.filter(|_| !degraded) else {
            return self
                .load_and_store(leaders, loader, degraded, Vec::new())
                .await;
        };
        let (claims, leases, degraded) = self.claim_leases(&leaders, flight).await;
        let mut mine = Vec::new();
        let mut elsewhere = Vec::new();
        for (leader, claim) in leaders.into_iter().zip(claims) {
            match claim {
                Claim::Load => mine.push(leader),
                Claim::Elsewhere => elsewhere.push(leader),
                Claim::Found(bytes) => leader.answer(Ok(bytes)),
            }
        }
        if mine.is_empty() {
            // Nothing of ours to load: wait, then load what was not stored in
            // time (as `get_or_load` does).
            let (late, failed) = self.await_others(elsewhere, flight.wait).await;
            if !late.is_empty() {
                self.load_and_store(late, loader, degraded || failed, leases)
                    .await;
            }
            return;
        }
        let theirs = async {
            let (late, _) = self.await_others(elsewhere, flight.wait).await;
            // The loader runs once, already for our own keys: a key another
            // process still holds is not loaded a second time.
            let failure: BoxError = format!(
                "another process holds the load lease and stored no value within {:?}",
                flight.wait
            )
            .into();
            let failure: Arc<dyn std::error::Error + Send + Sync> = Arc::from(failure);
            flight::complete_all(
                late.into_iter()
                    .map(|l| (l.flight, Err(Arc::clone(&failure)))),
            );
        };
        futures_util::future::join(self.load_and_store(mine, loader, degraded, leases), theirs)
            .await;
    }

    /// Calls the loader for `mine`, writes back what it found, releases
    /// `leases` and answers each key's flight. `degraded` (Redis failed)
    /// answers before the write-back, which is then best effort.
    async fn load_and_store<F, Fut, I, E>(
        &self,
        mine: Vec<Leader<K>>,
        loader: F,
        degraded: bool,
        leases: Vec<crate::lease::Lease>,
    ) where
        F: FnOnce(Vec<K>) -> Fut,
        Fut: Future<Output = std::result::Result<I, E>>,
        I: IntoIterator<Item = (K, V)>,
        E: Into<BoxError>,
    {
        let counters = self.counters();
        bump(&counters.loads);
        let asked: Vec<K> = mine.iter().map(|leader| leader.key.clone()).collect();
        #[cfg(feature = "metrics")]
        let started = std::time::Instant::now();
        let loaded: Vec<Outcome> = match loader(asked).await {
            Ok(found) => self.encode_found(&mine, found),
            Err(error) => {
                bump(&counters.load_errors);
                let failure: Arc<dyn std::error::Error + Send + Sync> = Arc::from(error.into());
                mine.iter().map(|_| Err(Arc::clone(&failure))).collect()
            }
        };
        #[cfg(feature = "metrics")]
        self.counters.labels.load_took(started.elapsed());
        let (keys, flights): (Vec<(String, bool)>, Vec<FlightGuard>) = mine
            .into_iter()
            .map(|leader| ((leader.flight.key().to_owned(), leader.heal), leader.flight))
            .unzip();
        let answers = flights.into_iter().zip(loaded.iter().cloned());
        // Every key's flight is retired before any is answered. Degraded:
        // answer now, and write back afterwards, best effort.
        let answers = if degraded {
            flight::complete_all(answers);
            None
        } else {
            Some(answers)
        };
        self.store_many(&keys, &loaded).await;
        for lease in leases {
            let _ = lease.release().await;
        }
        // Stored first, so that a caller's next read finds what it was given.
        if let Some(answers) = answers {
            flight::complete_all(answers);
        }
    }

    /// Answers the leaders whose key another flight stored while this
    /// batch's read was out; returns the others (all of them if the read
    /// fails: they are loaded as planned).
    async fn not_stored_meanwhile(&self, leaders: Vec<Leader<K>>) -> Vec<Leader<K>> {
        let full_keys: Vec<String> = leaders.iter().map(|l| l.full_key().to_owned()).collect();
        let backend = self.cache.backend();
        let found = match backend.within(backend.get_many(&full_keys)).await {
            Ok(found) if found.len() == leaders.len() => found,
            _ => return leaders,
        };
        let mut missing = Vec::new();
        let mut stored = Vec::new();
        for (leader, bytes) in leaders.into_iter().zip(found) {
            match bytes {
                Some(bytes) if !leader.heal => {
                    bump(&self.counters().coalesced_waits);
                    stored.push((leader.flight, Ok(Some(bytes))));
                }
                _ => missing.push(leader),
            }
        }
        flight::complete_all(stored);
        missing
    }

    /// Takes each leader's lease (as `get_or_load` does), then rereads the
    /// keys once: another process may have stored them since our miss.
    /// Returns each leader's claim, the leases held (to release after the
    /// write-back), and whether Redis failed on the way (then every key not
    /// found is this process's to load).
    async fn claim_leases(
        &self,
        leaders: &[Leader<K>],
        flight: crate::DistributedFlight,
    ) -> (Vec<Claim>, Vec<crate::lease::Lease>, bool) {
        let acquire = leaders.iter().map(|leader| {
            let key = self.lock.tagged_key(&leader.key);
            crate::lease::Lease::acquire(&self.cache, key, flight.lease)
        });
        let mut failed = false;
        let mut held = Vec::with_capacity(leaders.len());
        let mut claims = Vec::with_capacity(leaders.len());
        for acquired in futures_util::future::join_all(acquire).await {
            let (claim, lease) = match acquired {
                Ok(Some((lease, _))) => (Claim::Load, Some(lease)),
                Ok(None) => (Claim::Elsewhere, None),
                Err(_) => {
                    failed = true;
                    (Claim::Load, None)
                }
            };
            claims.push(claim);
            held.push(lease);
        }
        let keys: Vec<&str> = leaders.iter().map(Leader::full_key).collect();
        let found = match failed {
            true => Err(()),
            false => self.reread(&keys).await.map_err(drop),
        };
        let Ok(found) = found else {
            // Without Redis the leases are moot: load every key.
            let claims = claims.into_iter().map(|_| Claim::Load).collect();
            return (claims, held.into_iter().flatten().collect(), true);
        };
        let mut leases = Vec::new();
        let mut moot = Vec::new();
        for ((claim, lease), found) in claims.iter_mut().zip(held).zip(found) {
            match found {
                Some(found) => {
                    bump(&self.counters().coalesced_waits);
                    *claim = Claim::Found(found);
                    moot.extend(lease);
                }
                None => leases.extend(lease),
            }
        }
        futures_util::future::join_all(moot.iter().map(crate::lease::Lease::release)).await;
        (claims, leases, false)
    }

    /// Polls Redis for the keys other processes are loading, answering each
    /// as it is stored, for up to `wait`. Returns the keys still missing, and
    /// whether Redis failed (those not yet found are then returned at once).
    async fn await_others(
        &self,
        mut pending: Vec<Leader<K>>,
        wait: Duration,
    ) -> (Vec<Leader<K>>, bool) {
        let deadline = tokio::time::Instant::now() + wait;
        while !pending.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let keys: Vec<&str> = pending.iter().map(Leader::full_key).collect();
            let Ok(found) = self.reread(&keys).await else {
                return (pending, true);
            };
            let mut still = Vec::with_capacity(pending.len());
            for (leader, found) in pending.into_iter().zip(found) {
                match found {
                    Some(found) => {
                        bump(&self.counters().coalesced_waits);
                        leader.answer(Ok(found));
                    }
                    None => still.push(leader),
                }
            }
            pending = still;
        }
        (pending, false)
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
    fn encode_found<I>(&self, leaders: &[Leader<K>], found: I) -> Vec<Outcome>
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
                    .encode_for(leader.full_key(), &value, max)
                    .map(Some)
                    .map_err(|error| Arc::new(error) as Arc<dyn std::error::Error + Send + Sync>),
                None => Ok(None),
            })
            .collect()
    }

    /// Writes back what was loaded in one round trip (per slot on a
    /// cluster): values with the keyspace's TTL and jitter, "absent" markers
    /// with the negative TTL, and removes healed keys the loader did not find.
    /// `keys` are the loaded full keys, each with whether it is healed.
    async fn store_many(&self, keys: &[(String, bool)], outcomes: &[Outcome]) {
        let mut writes: Vec<(String, Vec<u8>, Option<Duration>)> = Vec::new();
        let mut removals = Vec::new();
        for ((full_key, heal), outcome) in keys.iter().zip(outcomes) {
            match outcome {
                Ok(Some(bytes)) => {
                    let ttl = self.ttl.map(|ttl| self.load.jittered(ttl));
                    writes.push((full_key.clone(), bytes.clone(), ttl));
                }
                Ok(None) => {
                    if *heal {
                        removals.push(full_key.clone());
                    }
                    if let Some(ttl) = self.load.negative_ttl {
                        let marker = self.absent.key_of_full(full_key, &self.layout);
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
        let written: Vec<&str> = match self.local.is_on() {
            true => keys.iter().map(|(full_key, _)| full_key.as_str()).collect(),
            false => Vec::new(),
        };
        let store = backend.set_many(writes);
        if let Err(error) = self.local.around(&written, store).await {
            tracing::debug!(%error, "write-back after load failed");
        }
    }
}
