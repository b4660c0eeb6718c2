//! The write-back of a flight: values with the keyspace's TTL and jitter
//! (under fail-safe with their header, kept for the window longer), cached
//! absences with the negative TTL, and removal of undecodable values the
//! loader no longer finds. Best effort: the callers have their answers.

use crate::engine::access::Sealed;
use crate::engine::flight::Outcome;
use crate::engine::{Since, Space};
use crate::stats::bump;

/// Stores `outcomes` of the full `keys` (each with whether it is healed):
/// one write alone as a SET, several in one round trip per slot.
pub(super) async fn store(
    space: &Space,
    keys: &[(String, bool)],
    (outcomes, tags): (&[Outcome], &[Vec<String>]),
    since: Since,
) {
    let mut writes: Sealed = Vec::new();
    let mut removals = Vec::new();
    let no_tags = Vec::new();
    for (at, ((full_key, heal), outcome)) in keys.iter().zip(outcomes).enumerate() {
        match outcome {
            // Returned to the callers, not stored (fail-open; counted by encode).
            Ok(Some(bytes)) if bytes.len() > space.engine.max_value_size() => {}
            Ok(Some(bytes)) => {
                let ttl = (space.ttl).map(|ttl| space.load.jittered(ttl));
                let tags = tags.get(at).unwrap_or(&no_tags);
                let sealed = space.seal_since(bytes.clone(), ttl, tags, since.clone());
                match sealed.await {
                    Ok(Some((stored, kept))) => writes.push((full_key.clone(), stored, kept)),
                    // Loaded across an invalidation of one of its tags.
                    Ok(None) => bump(&space.counters.unstored_values),
                    Err(error) => {
                        tracing::debug!(%error, "stamping the tags of a loaded value failed")
                    }
                }
            }
            Ok(None) => {
                if *heal {
                    removals.push(full_key.clone());
                }
                if let Some(ttl) = space.load.negative_ttl {
                    let marker = space.absent.key_of_full(full_key, &space.layout);
                    writes.push((marker, b"1".to_vec(), Some(space.load.jittered(ttl))));
                }
            }
            Err(_) => {}
        }
    }
    let backend = space.backend();
    if !removals.is_empty()
        && let Err(error) = backend.delete_many(&removals).await
    {
        tracing::debug!(%error, "removing undecodable values failed");
    }
    if writes.is_empty() {
        return;
    }
    let written: Vec<String> = keys.iter().map(|(full_key, _)| full_key.clone()).collect();
    let stored = space.put_sealed(writes, &written).await;
    if let Err(error) = stored {
        tracing::debug!(%error, "write-back after load failed");
    }
}
