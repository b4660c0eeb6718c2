//! A quick_cache sized so that it never holds more than asked for.

/// A cache that never holds more than `capacity` entries: quick_cache splits
/// its capacity between shards, rounding each share up, so the total asked
/// for is a multiple of the shard count.
pub(crate) fn cache<V: Clone>(capacity: u64) -> quick_cache::sync::Cache<String, V> {
    let capacity = usize::try_from(capacity).unwrap_or(usize::MAX);
    let shards = 16_usize.min(capacity.max(1)).next_power_of_two();
    let shards = if shards > capacity.max(1) {
        shards / 2
    } else {
        shards
    }
    .max(1);
    let held = capacity - capacity % shards;
    let options = quick_cache::OptionsBuilder::new()
        .shards(shards)
        .estimated_items_capacity(held)
        .weight_capacity(u64::try_from(held).unwrap_or(u64::MAX))
        .build();
    match options {
        Ok(options) => quick_cache::sync::Cache::with_options(
            options,
            quick_cache::UnitWeighter,
            quick_cache::DefaultHashBuilder::default(),
            quick_cache::sync::DefaultLifecycle::default(),
        ),
        // Only an option left unset fails; all are set above.
        Err(_) => quick_cache::sync::Cache::new(held),
    }
}
