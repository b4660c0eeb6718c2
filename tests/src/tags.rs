//! Where tag states live, for tests that lose them on purpose.

use cache_core::Cache;

/// The full key of the user tag `tag`'s state in `cache`'s namespace, as the
/// tag guide gives the layout.
pub fn tag_state_key(cache: &Cache, tag: &str) -> String {
    let mut namespace = String::new();
    cache_core::escape_into(cache.namespace().unwrap_or_default(), &mut namespace);
    let mut key = format!("{namespace}:{{{namespace}#tags}}:t:");
    cache_core::escape_into(tag, &mut key);
    key
}
