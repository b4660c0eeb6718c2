//! The service's settings, from the environment.

use std::net::SocketAddr;
use std::time::Duration;

/// Where the gateway listens when `GATEWAY_ADDR` is unset.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// Chat requests per minute per user when `GATEWAY_RATE_LIMIT` is unset.
pub const DEFAULT_RATE_LIMIT: u64 = 60;
/// The embedded database when `DATABASE_URL` is unset: SQLite in memory,
/// created and seeded at start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite::memory:";

/// Everything the service is configured with.
#[derive(Clone)]
pub struct Config {
    /// `REDIS_URL`: one Redis server.
    pub redis_url: Option<String>,
    /// `REDIS_CLUSTER_NODES`: comma-separated node URLs of a Redis Cluster
    /// (wins over `REDIS_URL`). With neither, the embedded memory backend.
    pub cluster_nodes: Option<Vec<String>>,
    /// `REDIS_SENTINEL_MASTER` and `REDIS_SENTINELS` (comma-separated
    /// sentinel URLs): a primary behind Redis Sentinel (wins over both above).
    pub sentinels: Option<(String, Vec<String>)>,
    /// `DATABASE_URL`: `sqlite:...` or `postgres://...`.
    pub database_url: String,
    /// `GATEWAY_ADDR`: the listen address.
    pub addr: SocketAddr,
    /// `GATEWAY_RATE_LIMIT`: chat requests per minute per user.
    pub rate_limit: u64,
    /// `GATEWAY_JWT_SECRET`: the HS256 key; random per start when unset
    /// (tokens then do not survive a restart or work across instances).
    pub jwt_secret: Vec<u8>,
    /// `GATEWAY_ADMIN_TOKEN`: the bearer token `PUT /v1/prices/{model}`
    /// needs; price updates are refused while it is unset.
    pub admin_token: Option<String>,
    /// `GATEWAY_REDIS_TIMEOUT_MS`: the bound on every Redis call (default 1000).
    pub redis_timeout: Duration,
    /// The namespace of the service's keys in Redis.
    pub namespace: String,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret or the admin token; URLs with passwords redacted.
        f.debug_struct("Config")
            .field(
                "redis_url",
                &self.redis_url.as_deref().map(cache_core::redact::url),
            )
            .field(
                "cluster_nodes",
                &self.cluster_nodes.as_deref().map(cache_core::redact::nodes),
            )
            .field(
                "sentinels",
                &(self.sentinels.as_ref())
                    .map(|(master, urls)| (master, cache_core::redact::nodes(urls))),
            )
            .field("database_url", &cache_core::redact::url(&self.database_url))
            .field("addr", &self.addr)
            .field("rate_limit", &self.rate_limit)
            .field("redis_timeout", &self.redis_timeout)
            .finish_non_exhaustive()
    }
}

/// Every variable the gateway reads.
const VARIABLES: [&str; 10] = [
    "REDIS_URL",
    "REDIS_CLUSTER_NODES",
    "REDIS_SENTINEL_MASTER",
    "REDIS_SENTINELS",
    "DATABASE_URL",
    "GATEWAY_ADDR",
    "GATEWAY_RATE_LIMIT",
    "GATEWAY_JWT_SECRET",
    "GATEWAY_ADMIN_TOKEN",
    "GATEWAY_REDIS_TIMEOUT_MS",
];

impl Config {
    /// Reads the settings from the environment; the error names the
    /// variable and what was wrong with it.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (the environment, or a map in
    /// tests). A variable that is set but empty is refused by name: it is
    /// most likely a deployment mistake (an empty `REDIS_URL` would
    /// otherwise run the gateway on its own memory backend).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        if let Some(name) = VARIABLES
            .into_iter()
            .find(|name| lookup(name).is_some_and(|value| value.trim().is_empty()))
        {
            return Err(format!(
                "{name} is set but empty: give it a value, or unset it for its default"
            ));
        }
        let addr = lookup("GATEWAY_ADDR").unwrap_or_else(|| DEFAULT_ADDR.to_owned());
        let addr = addr
            .parse()
            .map_err(|err| format!("GATEWAY_ADDR={addr:?} is not a socket address: {err}"))?;
        let rate_limit = match lookup("GATEWAY_RATE_LIMIT") {
            None => DEFAULT_RATE_LIMIT,
            Some(text) => match text.parse::<u64>() {
                Ok(limit) if limit > 0 => limit,
                _ => {
                    return Err(format!(
                        "GATEWAY_RATE_LIMIT={text:?} must be a whole number above 0"
                    ));
                }
            },
        };
        let redis_timeout = match lookup("GATEWAY_REDIS_TIMEOUT_MS") {
            None => Duration::from_secs(1),
            Some(text) => match text.parse::<u64>() {
                Ok(ms) if ms > 0 => Duration::from_millis(ms),
                _ => {
                    return Err(format!(
                        "GATEWAY_REDIS_TIMEOUT_MS={text:?} must be a whole number of milliseconds above 0"
                    ));
                }
            },
        };
        let jwt_secret = match lookup("GATEWAY_JWT_SECRET") {
            Some(secret) => secret.into_bytes(),
            None => random_bytes::<32>()?.to_vec(),
        };
        let urls = |var: &str| {
            let urls = lookup(var).map(|urls| {
                urls.split(',')
                    .map(str::trim)
                    .filter(|url| !url.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            });
            urls.filter(|urls| !urls.is_empty())
        };
        let master = lookup("REDIS_SENTINEL_MASTER").filter(|name| !name.trim().is_empty());
        Ok(Config {
            redis_url: lookup("REDIS_URL"),
            cluster_nodes: urls("REDIS_CLUSTER_NODES"),
            sentinels: master.zip(urls("REDIS_SENTINELS")),
            database_url: lookup("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
            addr,
            rate_limit,
            jwt_secret,
            admin_token: lookup("GATEWAY_ADMIN_TOKEN"),
            redis_timeout,
            namespace: "gateway".to_owned(),
        })
    }
}

/// `N` bytes from the operating system's random source.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], String> {
    let mut bytes = [0_u8; N];
    getrandom::fill(&mut bytes).map_err(|err| format!("no random bytes from the system: {err}"))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::Config;

    fn config(settings: &[(&str, &str)]) -> Result<Config, String> {
        Config::from_lookup(|name| {
            let found = settings.iter().find(|(key, _)| *key == name);
            found.map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn defaults_need_no_settings() -> Result<(), String> {
        let config = config(&[])?;
        assert_eq!(config.addr.to_string(), super::DEFAULT_ADDR);
        assert_eq!(config.rate_limit, super::DEFAULT_RATE_LIMIT);
        assert_eq!(config.database_url, super::DEFAULT_DATABASE_URL);
        assert!(config.redis_url.is_none() && config.cluster_nodes.is_none());
        assert_eq!(config.jwt_secret.len(), 32);
        Ok(())
    }

    #[test]
    fn bad_settings_are_refused_by_name() {
        let refused = |name: &str, value: &str| match config(&[(name, value)]) {
            Err(message) => assert!(message.contains(name), "{message}"),
            Ok(_) => panic!("{name}={value} was accepted"),
        };
        refused("GATEWAY_ADDR", "localhost");
        refused("GATEWAY_RATE_LIMIT", "sixty");
        refused("GATEWAY_RATE_LIMIT", "0");
        refused("GATEWAY_REDIS_TIMEOUT_MS", "-5");
        // Set but empty: a deployment mistake, never the default.
        for name in super::VARIABLES {
            refused(name, "");
            refused(name, "  ");
        }
    }

    #[test]
    fn sentinel_needs_both_its_variables() -> Result<(), String> {
        let urls = "redis://s1:26379, redis://s2:26379";
        let both = config(&[
            ("REDIS_SENTINEL_MASTER", "cache"),
            ("REDIS_SENTINELS", urls),
        ])?;
        let expected = ["redis://s1:26379", "redis://s2:26379"].map(String::from);
        assert_eq!(
            both.sentinels,
            Some(("cache".to_owned(), expected.to_vec()))
        );
        assert!(config(&[("REDIS_SENTINELS", urls)])?.sentinels.is_none());
        assert!(
            config(&[("REDIS_SENTINEL_MASTER", "cache")])?
                .sentinels
                .is_none()
        );
        Ok(())
    }

    #[test]
    fn debug_output_hides_passwords_and_secrets() -> Result<(), String> {
        let config = config(&[
            ("REDIS_URL", "redis://:hunter2@cache:6379"),
            ("REDIS_SENTINEL_MASTER", "cache"),
            ("REDIS_SENTINELS", "redis://:sentinel-pw@s1:26379"),
            ("DATABASE_URL", "postgres://app:s3cret@db/prices"),
            ("GATEWAY_JWT_SECRET", "jwt-key-material"),
            ("GATEWAY_ADMIN_TOKEN", "admin-token-value"),
        ])?;
        let shown = format!("{config:?}");
        let secrets = [
            "hunter2",
            "sentinel-pw",
            "s3cret",
            "jwt-key-material",
            "admin-token-value",
        ];
        for secret in secrets {
            assert!(!shown.contains(secret), "{shown}");
        }
        Ok(())
    }
}
