//! The entry points of cache-aside: one key (a batch of one) and many keys,
//! each with its span, adapting the caller's loader to the protocol's
//! positions and spreading the answers back over the caller's keys.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::{Got, decode, mark_stale, run};
use crate::codec::ValueFormat;
use crate::engine::Space;
use crate::error::{BoxError, Result};
use crate::freshness::{Freshness, Loaded};

/// How a view's values are stored: their format and the tags they carry.
pub(crate) type Types<V> = (ValueFormat, fn(&V) -> Vec<String>);

impl Space {
    /// Cache-aside for `full_key`, with a loader that returns the value and
    /// its tags.
    ///
    /// # Errors
    /// As [`run`].
    pub(crate) async fn load_one<V, F, Fut, E>(
        &self,
        types: Types<V>,
        full_key: String,
        loader: F,
    ) -> Result<Loaded<V>>
    where
        V: Serialize + DeserializeOwned + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<Option<(V, Vec<String>)>, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let span = self.span("get_or_load");
        let keys = [full_key];
        // The one key is position 0.
        let loader = move |_: Vec<usize>| async move {
            let found = loader().await.map_err(Into::into)?;
            Ok(found
                .map(|(value, tags)| (0, value, tags))
                .into_iter()
                .collect())
        };
        let got = run(self, types, &keys, loader)
            .instrument(span.clone())
            .await?;
        mark_stale(&span, &got);
        Ok(match got.into_iter().next() {
            Some(got) => Loaded {
                value: got.value,
                freshness: got.freshness,
            },
            None => Loaded {
                value: None,
                freshness: Freshness::Fresh,
            },
        })
    }

    /// Cache-aside for `keys` (full keys by `full_key`), each distinct key
    /// loaded at most once, answered in the order of `keys`.
    ///
    /// # Errors
    /// As [`run`].
    pub(crate) async fn load_many<K, V, F, Fut, I, E>(
        &self,
        types: Types<V>,
        (keys, full_key): (&[K], impl Fn(&K) -> String),
        loader: F,
    ) -> Result<Vec<Option<V>>>
    where
        K: Clone + Eq + Hash + Send + Sync + 'static,
        V: Serialize + DeserializeOwned + Send + 'static,
        F: FnOnce(Vec<K>) -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<I, E>> + Send + 'static,
        I: IntoIterator<Item = (K, V)> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let span = self.span("get_or_load_many");
        let Distinct {
            keys: asked,
            full_keys,
            place,
        } = Distinct::of(keys, full_key);
        // Positions back to keys for the caller's loader, and its pairs back to positions.
        let loader = move |positions: Vec<usize>| async move {
            let wanted: Vec<K> = positions
                .iter()
                .filter_map(|&at| asked.get(at).cloned())
                .collect();
            let found = loader(wanted).await.map_err(Into::into)?;
            let mut found: HashMap<K, V> = found.into_iter().collect();
            let by_position = positions.into_iter().filter_map(|at| {
                let value = found.remove(asked.get(at)?)?;
                Some((at, value, Vec::new()))
            });
            Ok(by_position.collect())
        };
        let got = run(self, types, &full_keys, loader);
        let got = got.instrument(span.clone()).await?;
        mark_stale(&span, &got);
        self.spread(types.0, got, &place, &full_keys)
    }

    /// Each of the caller's positions gets its key's value. From the last
    /// place back: a key's last place takes the decoded value, earlier places
    /// of a key listed twice decode its bytes again (V need not be Clone).
    fn spread<V: DeserializeOwned>(
        &self,
        format: ValueFormat,
        mut got: Vec<Got<V>>,
        place: &[usize],
        names: &[String],
    ) -> Result<Vec<Option<V>>> {
        let mut out = Vec::with_capacity(place.len());
        for &at in place.iter().rev() {
            let Some(got) = got.get_mut(at) else {
                out.push(None);
                continue;
            };
            out.push(match (got.value.take(), &got.bytes, names.get(at)) {
                (Some(value), _, _) => Some(value),
                (None, Some(bytes), Some(name)) => decode(self, format, name, bytes)?,
                (None, _, _) => None,
            });
        }
        out.reverse();
        Ok(out)
    }
}

/// The distinct keys of a batch, in first-seen order, and where each of the
/// caller's positions finds its key among them.
struct Distinct<K> {
    keys: Vec<K>,
    full_keys: Vec<String>,
    place: Vec<usize>,
}

impl<K: Clone> Distinct<K> {
    fn of(keys: &[K], full_key: impl Fn(&K) -> String) -> Self {
        let all: Vec<String> = keys.iter().map(full_key).collect();
        let mut firsts = Vec::with_capacity(keys.len());
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(keys.len());
        let place = (all.iter().enumerate())
            .map(|(at, full)| {
                *index.entry(full).or_insert_with(|| {
                    firsts.push(at);
                    firsts.len() - 1
                })
            })
            .collect();
        drop(index);
        let keys = firsts
            .iter()
            .filter_map(|&at| keys.get(at).cloned())
            .collect();
        let full_keys = match firsts.len() == all.len() {
            true => all,
            false => firsts
                .iter()
                .filter_map(|&at| all.get(at).cloned())
                .collect(),
        };
        Distinct {
            keys,
            full_keys,
            place,
        }
    }
}
