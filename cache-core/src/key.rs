//! Turning typed keys into Redis key strings.
//!
//! Layout: `{namespace}:{prefix}:v{version}:{key}` (the namespace part is left
//! out when there is none). Every user-supplied part is escaped: `A-Z a-z 0-9 . _ -`
//! stay as they are and every other byte becomes `%XX`. So a part never holds a
//! raw `:`, `{`, `}`, `*` or `?`, which keeps the layout unambiguous, keeps user
//! input from choosing a Cluster hash slot, and keeps glob patterns out of SCAN.

use std::sync::Arc;

use sha2::{Digest, Sha256};

/// Escaped key parts longer than this are replaced by `#` and their SHA-256.
/// `#` never appears in an escaped part, so digests cannot collide with plain keys.
pub const MAX_KEY_PART_LEN: usize = 256;

/// A type that can name an entry in a typed cache.
///
/// Implemented for `str`, `String`, the integer types, `bool`, `char`, references
/// to those, and tuples of up to four keys (parts joined by `,`, which escaping
/// never produces inside a part).
///
/// ```
/// use cache_core::CacheKey;
///
/// assert_eq!("gpt-4".to_key_string(), "gpt-4");
/// assert_eq!("a:b c".to_key_string(), "a%3Ab%20c");
/// assert_eq!((42u64, "x").to_key_string(), "42,x");
/// ```
///
/// A domain id can implement it by delegating to one of those:
///
/// ```
/// use cache_core::CacheKey;
///
/// struct UserId(u64);
/// impl CacheKey for UserId {
///     fn write_key(&self, out: &mut String) {
///         self.0.write_key(out)
///     }
/// }
/// assert_eq!(UserId(7).to_key_string(), "7");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be (part of) a cache key",
    label = "not a `cache_core::CacheKey`",
    note = "keys are strings, integers, `bool`, `char`, `()` or tuples of up to 4 of those; \
            a domain type can implement `CacheKey`"
)]
pub trait CacheKey {
    /// Appends this key, escaped, to `out`.
    fn write_key(&self, out: &mut String);

    /// This key as it appears after the `v{version}:` part (digested when very long).
    fn to_key_string(&self) -> String {
        let mut out = String::new();
        self.write_key(&mut out);
        shorten(out)
    }
}

/// Appends `raw` to `out` with every byte outside `A-Z a-z 0-9 . _ -` percent-encoded.
///
/// ```
/// let mut out = String::new();
/// cache_core::escape_into("50%{x}", &mut out);
/// assert_eq!(out, "50%25%7Bx%7D");
/// ```
pub fn escape_into(raw: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let kept = |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-');
    // Most keys need no escaping: copy them whole.
    if raw.bytes().all(kept) {
        out.push_str(raw);
        return;
    }
    out.reserve(raw.len());
    for &byte in raw.as_bytes() {
        if kept(byte) {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0F)]));
        }
    }
}

/// True when `part` is non-empty and made only of `A-Z a-z 0-9 . _ -`, the rule
/// for prefixes (the derive checks the same rule at compile time).
///
/// ```
/// assert!(cache_core::is_valid_prefix("model_price.v2-x"));
/// assert!(!cache_core::is_valid_prefix("a:b"));
/// assert!(!cache_core::is_valid_prefix(""));
/// ```
pub fn is_valid_prefix(part: &str) -> bool {
    !part.is_empty()
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn shorten(escaped: String) -> String {
    if escaped.len() <= MAX_KEY_PART_LEN {
        return escaped;
    }
    let digest = Sha256::digest(escaped.as_bytes());
    let mut out = String::with_capacity(1 + 64);
    out.push('#');
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

impl CacheKey for str {
    fn write_key(&self, out: &mut String) {
        escape_into(self, out);
    }
}

impl CacheKey for String {
    fn write_key(&self, out: &mut String) {
        escape_into(self, out);
    }
}

impl<T: CacheKey + ?Sized> CacheKey for &T {
    fn write_key(&self, out: &mut String) {
        (**self).write_key(out);
    }
}

macro_rules! display_keys {
    ($($ty:ty),*) => {$(
        impl CacheKey for $ty {
            fn write_key(&self, out: &mut String) {
                // Integers and bools print only characters that need no escaping.
                use std::fmt::Write as _;
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
display_keys!(
    i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, bool
);

/// The key of a cached function without key arguments: nothing after
/// `v{version}:`.
impl CacheKey for () {
    fn write_key(&self, _out: &mut String) {}
}

impl CacheKey for char {
    fn write_key(&self, out: &mut String) {
        escape_into(self.encode_utf8(&mut [0; 4]), out);
    }
}

macro_rules! tuple_keys {
    ($first:ident $(, $rest:ident)*) => {
        impl<$first: CacheKey, $($rest: CacheKey),*> CacheKey for ($first, $($rest,)*) {
            #[allow(non_snake_case)]
            fn write_key(&self, out: &mut String) {
                let ($first, $($rest,)*) = self;
                $first.write_key(out);
                $(
                    out.push(',');
                    $rest.write_key(out);
                )*
            }
        }
    };
}
tuple_keys!(A);
tuple_keys!(A, B);
tuple_keys!(A, B, C);
tuple_keys!(A, B, C, D);

/// The fixed head of every key of one typed cache: `{namespace}:{prefix}:v{version}:`.
/// Shared strings: every view of a keyspace clones its layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyLayout {
    head: Arc<str>,
    /// Where the version part starts in `head`, to derive companion keyspaces.
    version_at: usize,
    prefix: Arc<str>,
}

impl KeyLayout {
    /// `prefix` is escaped too, so a hand-written `Cacheable` impl cannot break the layout.
    pub(crate) fn new(namespace: Option<&str>, prefix: &str, version: u32) -> Self {
        let mut head = String::new();
        if let Some(namespace) = namespace {
            escape_into(namespace, &mut head);
            head.push(':');
        }
        escape_into(prefix, &mut head);
        let version_at = head.len();
        head.push_str(&format!(":v{version}:"));
        KeyLayout {
            head: head.into(),
            version_at,
            prefix: prefix.into(),
        }
    }

    /// A companion keyspace, `{namespace}:{prefix}#{role}:v{version}:`, for data
    /// a building block keeps beside the values (negative entries, load locks).
    /// `#` never appears in an escaped prefix, so no user keyspace can meet it.
    /// Where a namespace's tag states live: `{ns}:{{ns}#tags}:`, one hash
    /// slot per namespace (`#` never appears in an escaped part).
    pub(crate) fn tag_states(namespace: Option<&str>) -> KeyLayout {
        let mut escaped = String::new();
        if let Some(namespace) = namespace {
            escape_into(namespace, &mut escaped);
        }
        let head = match namespace {
            Some(_) => format!("{escaped}:{{{escaped}#tags}}:"),
            None => "{#tags}:".to_owned(),
        };
        KeyLayout {
            version_at: head.len(),
            head: head.into(),
            prefix: "#tags".into(),
        }
    }

    /// The prefix and version, as `price:v1`.
    pub(crate) fn prefix_and_version(&self) -> String {
        let version = self.head[self.version_at..].trim_matches(':');
        format!("{}:{version}", self.prefix)
    }

    pub(crate) fn companion(&self, role: &str) -> KeyLayout {
        let mut head = String::with_capacity(self.head.len() + role.len() + 1);
        head.push_str(&self.head[..self.version_at]);
        head.push('#');
        head.push_str(role);
        let version_at = head.len();
        head.push_str(&self.head[self.version_at..]);
        KeyLayout {
            head: head.into(),
            version_at,
            prefix: format!("{}#{role}", self.prefix).into(),
        }
    }

    /// The key in this keyspace with the same key part as `full_key` of `from`.
    pub(crate) fn key_of_full(&self, full_key: &str, from: &KeyLayout) -> String {
        let part = full_key.strip_prefix(&*from.head).unwrap_or(full_key);
        format!("{}{part}", self.head)
    }

    /// [`tagged_key`](Self::tagged_key) of the key whose full key in `from` is `full_key`.
    pub(crate) fn tagged_key_of_full(&self, full_key: &str, from: &KeyLayout) -> String {
        let part = full_key.strip_prefix(&*from.head).unwrap_or(full_key);
        format!("{}{{{part}}}", self.head)
    }

    /// The fixed head of every key, `{namespace}:{prefix}:v{version}:`.
    pub(crate) fn head(&self) -> &str {
        &self.head
    }

    /// The prefix as configured, for logs and traces.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key for `key` with its part as a Cluster hash tag, `...:v1:{part}`, so
    /// that companion keys made by appending to it land in the same slot. Escaped
    /// parts never hold braces, so the tag is exactly the part.
    pub(crate) fn tagged_key<Q: CacheKey + ?Sized>(&self, key: &Q) -> String {
        let plain = self.key(key);
        let mut tagged = String::with_capacity(plain.len() + 2);
        tagged.push_str(&self.head);
        tagged.push('{');
        tagged.push_str(&plain[self.head.len()..]);
        tagged.push('}');
        tagged
    }

    /// The full Redis key for `key`.
    pub(crate) fn key<Q: CacheKey + ?Sized>(&self, key: &Q) -> String {
        // One allocation in the common case: the key is escaped in place after the head.
        let mut full = String::with_capacity(self.head.len() + 32);
        full.push_str(&self.head);
        key.write_key(&mut full);
        if full.len() - self.head.len() > MAX_KEY_PART_LEN {
            let digest = shorten(full.split_off(self.head.len()));
            full.push_str(&digest);
        }
        full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_with_and_without_namespace() {
        let with = KeyLayout::new(Some("gateway"), "price", 1);
        assert_eq!(with.key("gpt-4"), "gateway:price:v1:gpt-4");
        let without = KeyLayout::new(None, "seq", 3);
        assert_eq!(without.key(&42i64), "seq:v3:42");
        assert_eq!(without.key(&-7i32), "seq:v3:-7");
    }

    #[test]
    fn tag_states_have_a_slot_per_namespace() {
        assert_eq!(KeyLayout::tag_states(Some("gw")).head(), "gw:{gw#tags}:");
        assert_eq!(
            KeyLayout::tag_states(Some("a{b")).head(),
            "a%7Bb:{a%7Bb#tags}:"
        );
        assert_eq!(KeyLayout::tag_states(None).head(), "{#tags}:");
    }

    #[test]
    fn companions_sit_beside_the_values() {
        let layout = KeyLayout::new(Some("gw"), "price", 2);
        assert_eq!(
            layout.companion("absent").key("gpt-4"),
            "gw:price#absent:v2:gpt-4"
        );
        assert_eq!(
            layout.companion("load").tagged_key("gpt-4"),
            "gw:price#load:v2:{gpt-4}"
        );
    }

    #[test]
    fn hostile_parts_are_escaped() {
        let layout = KeyLayout::new(Some("a:b"), "p", 1);
        assert_eq!(
            layout.key("{tag}*?[x]\\ \n%"),
            "a%3Ab:p:v1:%7Btag%7D%2A%3F%5Bx%5D%5C%20%0A%25"
        );
        assert_eq!(layout.key("é"), "a%3Ab:p:v1:%C3%A9");
        assert_eq!(layout.key(""), "a%3Ab:p:v1:");
    }

    #[test]
    fn long_keys_become_digests() {
        let layout = KeyLayout::new(None, "p", 1);
        let long = "x".repeat(10_000);
        let key = layout.key(long.as_str());
        assert_eq!(key.len(), "p:v1:#".len() + 64);
        assert_ne!(key, layout.key("x".repeat(10_001).as_str()));
        // At the limit the key is kept as it is.
        let edge = "y".repeat(MAX_KEY_PART_LEN);
        assert_eq!(layout.key(edge.as_str()), format!("p:v1:{edge}"));
    }

    mod injective {
        use super::*;
        use proptest::prelude::*;

        /// Strings rich in the characters that escaping and digests must keep apart,
        /// sometimes long enough to be digested.
        fn part() -> impl Strategy<Value = String> {
            prop_oneof![
                "[a-c:,%#{}*?. _\\\n-]{0,6}",
                any::<String>(),
                "[ab%:]{250,262}",
            ]
        }

        fn layout() -> impl Strategy<Value = (Option<String>, String, u32)> {
            (proptest::option::of(part()), "[a-c._-]{1,4}", 1u32..4)
        }

        fn full<K: CacheKey + ?Sized>(layout: &(Option<String>, String, u32), key: &K) -> String {
            KeyLayout::new(layout.0.as_deref(), &layout.1, layout.2).key(key)
        }

        proptest! {
            #[test]
            fn distinct_strings_give_distinct_keys(sa in layout(), a in part(), sb in layout(), b in part()) {
                prop_assume!((&sa, &a) != (&sb, &b));
                prop_assert_ne!(full(&sa, a.as_str()), full(&sb, b.as_str()));
            }

            #[test]
            fn distinct_tuples_give_distinct_keys(
                sa in layout(), a in (part(), part(), any::<i64>()),
                sb in layout(), b in (part(), part(), any::<i64>()),
            ) {
                prop_assume!((&sa, &a) != (&sb, &b));
                prop_assert_ne!(full(&sa, &a), full(&sb, &b));
            }

            #[test]
            fn tuples_never_meet_plain_strings(s in layout(), a in (part(), part()), b in part()) {
                prop_assert_ne!(full(&s, &a), full(&s, b.as_str()));
            }

            #[test]
            fn keys_hold_no_glob_or_hash_tag_characters(s in layout(), a in part()) {
                let key = full(&s, a.as_str());
                let special = key.contains(['{', '}', '*', '?', '[', ']', '\\', ' ', '\n']);
                prop_assert!(!special, "special character in {}", key);
            }
        }
    }
}
