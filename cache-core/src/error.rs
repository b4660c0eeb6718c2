//! The one error type of the crate.

use std::time::Duration;

/// A boxed error from a codec, kept as the `source()` of encode and decode errors.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result type of every fallible operation in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when talking to a cache.
///
/// Errors that concern one entry name its full key. URLs are always shown with
/// the password replaced by `***`.
///
/// ```
/// use cache_core::Error;
///
/// let err = Error::config("namespace must not be empty");
/// assert!(err.is_config());
/// assert_eq!(err.to_string(), "invalid configuration: namespace must not be empty");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration (URL, namespace, prefix, limits, ...) is not valid.
    #[error("invalid configuration: {message}")]
    #[non_exhaustive]
    Config {
        /// What was wrong.
        message: String,
    },

    /// The server could not be reached or the connection broke.
    #[error("cannot connect to {url}: {source}")]
    #[non_exhaustive]
    Connection {
        /// The server URL, password redacted.
        url: String,
        /// The underlying client error.
        #[source]
        source: redis::RedisError,
    },

    /// An operation did not finish within the configured timeout.
    #[error(
        "{operation} timed out after {after:?}{}{}",
        key_suffix(key),
        unknown_suffix(*outcome_unknown)
    )]
    #[non_exhaustive]
    Timeout {
        /// The operation, e.g. `"GET"` or `"connect"`.
        operation: &'static str,
        /// The key involved, if any.
        key: Option<String>,
        /// The timeout that elapsed.
        after: Duration,
        /// See [`Error::is_outcome_unknown`].
        outcome_unknown: bool,
    },

    /// Connecting (and the first `PING`) did not finish within the timeout.
    #[error("connecting to {url} timed out after {after:?}")]
    #[non_exhaustive]
    ConnectTimeout {
        /// The server URL, password redacted.
        url: String,
        /// The timeout that elapsed.
        after: Duration,
    },

    /// The server answered with an error, or the connection failed mid-call.
    #[error(
        "{operation} failed{}{}: {source}",
        key_suffix(key),
        unknown_suffix(*outcome_unknown)
    )]
    #[non_exhaustive]
    Backend {
        /// The operation that failed.
        operation: &'static str,
        /// The key involved, if any.
        key: Option<String>,
        /// The underlying client error.
        #[source]
        source: redis::RedisError,
        /// See [`Error::is_outcome_unknown`].
        outcome_unknown: bool,
    },

    /// A value could not be serialized.
    #[error("cannot encode the value for key `{key}`: {source}")]
    #[non_exhaustive]
    Encode {
        /// The key the value was meant for.
        key: String,
        /// The codec's error.
        #[source]
        source: BoxError,
    },

    /// Stored bytes could not be deserialized into the requested type.
    #[error("cannot decode the value stored at key `{key}`: {source}")]
    #[non_exhaustive]
    Decode {
        /// The key whose value is corrupt or of another schema.
        key: String,
        /// The codec's error.
        #[source]
        source: BoxError,
    },

    /// The key holds a value of another Redis type (e.g. a list where a string was expected).
    #[error("key `{key}` holds a value of the wrong type for {operation}")]
    #[non_exhaustive]
    WrongType {
        /// The operation that was refused.
        operation: &'static str,
        /// The key.
        key: String,
    },

    /// An encoded value is larger than the configured maximum.
    #[error("value for key `{key}` is {size} bytes, over the limit of {max} bytes")]
    #[non_exhaustive]
    ValueTooLarge {
        /// The key.
        key: String,
        /// The encoded size (before compression; as stored when framing made
        /// it larger).
        size: usize,
        /// The configured maximum.
        max: usize,
    },

    /// A TTL is zero, below one millisecond, or beyond what Redis accepts.
    #[error("invalid TTL {ttl:?}{}: {reason}", key_suffix(key))]
    #[non_exhaustive]
    InvalidTtl {
        /// The key the TTL was for, if known.
        key: Option<String>,
        /// The rejected TTL.
        ttl: Duration,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// A counter would leave the range of its integer type.
    #[error("incrementing key `{key}` by {delta} would overflow its integer type")]
    #[non_exhaustive]
    Overflow {
        /// The key.
        key: String,
        /// The increment that was refused.
        delta: i64,
    },

    /// A loader failed; every caller that waited for that load gets this.
    #[error("loading `{key}` failed: {source}")]
    #[non_exhaustive]
    Load {
        /// The key being loaded.
        key: String,
        /// The loader's error, shared by everyone who waited for it.
        #[source]
        source: std::sync::Arc<dyn std::error::Error + Send + Sync>,
    },

    /// A lock was still held by another owner when the wait ran out.
    #[error("lock `{key}` is held by another owner; waited {waited:?}")]
    #[non_exhaustive]
    LockBusy {
        /// The lock's key.
        key: String,
        /// How long the caller waited.
        waited: Duration,
    },

    /// The stored value is not an integer, so it cannot be incremented.
    #[error("key `{key}` does not hold an integer")]
    #[non_exhaustive]
    NotAnInteger {
        /// The key.
        key: String,
    },
}

fn unknown_suffix(unknown: bool) -> &'static str {
    if unknown {
        " (outcome unknown: it may or may not have been applied, and is not retried)"
    } else {
        ""
    }
}

fn key_suffix(key: &Option<String>) -> String {
    match key {
        Some(key) => format!(" for key `{key}`"),
        None => String::new(),
    }
}

impl Error {
    /// Builds a configuration error.
    ///
    /// ```
    /// let err = cache_core::Error::config("bad");
    /// assert!(err.is_config());
    /// ```
    pub fn config(message: impl Into<String>) -> Self {
        Error::Config {
            message: message.into(),
        }
    }

    /// True for [`Error::Timeout`] and [`Error::ConnectTimeout`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// let err = cache_core::Error::config("not a timeout");
    /// assert!(!err.is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. } | Error::ConnectTimeout { .. })
    }

    /// True when an operation that is not idempotent (an increment, `take`,
    /// `set_if_absent`, every multi-step operation of the building blocks)
    /// timed out or lost its connection after it was sent: Redis may or may
    /// not have applied it. Such operations are never sent twice. Idempotent
    /// ones (reads, `set`, `delete`, `expire`, batch reads and writes, `ttl`)
    /// are sent once more within the same timeout when the connection dropped
    /// under them, and are safe to retry.
    ///
    /// ```
    /// assert!(!cache_core::Error::config("x").is_outcome_unknown());
    /// ```
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(
            self,
            Error::Timeout {
                outcome_unknown: true,
                ..
            } | Error::Backend {
                outcome_unknown: true,
                ..
            }
        )
    }

    /// True for [`Error::Config`].
    ///
    /// ```
    /// assert!(cache_core::Error::config("x").is_config());
    /// ```
    pub fn is_config(&self) -> bool {
        matches!(self, Error::Config { .. })
    }

    /// True when the server could not be reached, the call failed on the
    /// wire, or the server is up but not serving yet (it answers `LOADING`
    /// while it reads its data back after a restart): a later call may work.
    /// That includes a cluster with no node to reach for the key and
    /// sentinels that name no reachable primary (or replica) for now.
    ///
    /// ```
    /// assert!(!cache_core::Error::config("x").is_connection());
    /// ```
    pub fn is_connection(&self) -> bool {
        use redis::ErrorKind::{
            ClusterConnectionNotFound, MasterNameNotFoundBySentinel,
            NoValidReplicasFoundBySentinel, Server,
        };
        match self {
            Error::Connection { .. } | Error::ConnectTimeout { .. } => true,
            Error::Backend { source, .. } => {
                source.is_io_error()
                    || source.is_connection_dropped()
                    || source.is_connection_refusal()
                    || matches!(
                        source.kind(),
                        Server(redis::ServerErrorKind::BusyLoading)
                            | ClusterConnectionNotFound
                            | MasterNameNotFoundBySentinel
                            | NoValidReplicasFoundBySentinel
                    )
            }
            _ => false,
        }
    }

    /// True for [`Error::Decode`]: the stored bytes do not fit the requested type.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::memory();
    /// cache.raw_set("n:v1:a", b"not json", None).await?;
    /// let err = cache.keyspace("n").typed::<String, Vec<u8>>()?.get("a").await.unwrap_err();
    /// assert!(err.is_decode());
    /// # Ok(()) }
    /// ```
    pub fn is_decode(&self) -> bool {
        matches!(self, Error::Decode { .. })
    }

    /// True for [`Error::WrongType`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::memory();
    /// cache.keyspace("n").typed_set::<String, u8>()?.add("a", &[1]).await?;
    /// let err = cache.keyspace("n").typed::<String, u8>()?.get("a").await.unwrap_err();
    /// assert!(err.is_wrong_type());
    /// # Ok(()) }
    /// ```
    pub fn is_wrong_type(&self) -> bool {
        matches!(self, Error::WrongType { .. })
    }

    /// The full key this error concerns, if any.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::builder().namespace("app").build_memory()?;
    /// cache.raw_set("app:n:v1:a", b"text", None).await?;
    /// let err = cache.keyspace("n").typed::<String, i64>()?.incr("a", 1).await.unwrap_err();
    /// assert_eq!(err.key(), Some("app:n:v1:a"));
    /// # Ok(()) }
    /// ```
    pub fn key(&self) -> Option<&str> {
        match self {
            Error::Timeout { key, .. }
            | Error::Backend { key, .. }
            | Error::InvalidTtl { key, .. } => key.as_deref(),
            Error::Encode { key, .. }
            | Error::Decode { key, .. }
            | Error::WrongType { key, .. }
            | Error::ValueTooLarge { key, .. }
            | Error::Overflow { key, .. }
            | Error::LockBusy { key, .. }
            | Error::Load { key, .. }
            | Error::NotAnInteger { key } => Some(key),
            Error::Config { .. } | Error::Connection { .. } | Error::ConnectTimeout { .. } => None,
        }
    }

    /// Maps a client error for `operation` on `key` to the most specific variant.
    pub(crate) fn from_redis(
        operation: &'static str,
        key: Option<&str>,
        source: redis::RedisError,
        outcome_unknown: bool,
    ) -> Self {
        let key_string = || key.unwrap_or_default().to_owned();
        // Inside a pipeline or script the server's code is wrapped, so look at
        // the text as well.
        let text = source.to_string();
        if source.code() == Some("WRONGTYPE") || text.contains("WRONGTYPE") {
            return Error::WrongType {
                operation,
                key: key_string(),
            };
        }
        if text.contains("not an integer") {
            return Error::NotAnInteger { key: key_string() };
        }
        Error::Backend {
            operation,
            key: key.map(str::to_owned),
            source,
            outcome_unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Error;
    use redis::ErrorKind;

    /// "Nothing to reach now" from the cluster or the sentinels is a
    /// connection error, as a refused connection is; a refusal is not.
    #[test]
    fn unreachable_kinds_are_connection_errors() {
        let unreachable = [
            ErrorKind::ClusterConnectionNotFound,
            ErrorKind::MasterNameNotFoundBySentinel,
            ErrorKind::NoValidReplicasFoundBySentinel,
        ];
        for kind in unreachable {
            let source = redis::RedisError::from((kind, "nothing to reach"));
            let err = Error::from_redis("GET", Some("k"), source, false);
            assert!(err.is_connection() && !err.is_timeout(), "{kind:?}");
        }
        let refused = redis::RedisError::from((ErrorKind::AuthenticationFailed, "no"));
        assert!(!Error::from_redis("GET", None, refused, false).is_connection());
    }
}
