//! An LLM gateway on cache-core: an axum service in front of a price table
//! in a real database, with the cache's building blocks where a real service
//! needs them.
//!
//! - `GET /v1/prices/{model}`: a `#[cached]` method: cache-aside with stampede protection,
//!   fail-open (served from the database while Redis is down).
//! - `PUT /v1/prices/{model}` (admin): updates the table and drops the
//!   cached price.
//! - `POST /v1/login`, `POST /v1/logout`: demo HS256 tokens; logout revokes
//!   the token until its expiry.
//! - `POST /v1/chat`: fail-closed token check against the revoked flags,
//!   a sliding-window rate limit per user (429 with `Retry-After`), a call
//!   counter and a per-user message sequence number.
//! - `GET /stats`: the cache's counters and the database reads.
//! - `GET /metrics`: the cache's metrics and the HTTP requests by route and
//!   status, in Prometheus' text format (`dashboard.json` charts them).
//!
//! Configured from the environment: see [`Config`]. Started in-process (as
//! the tests do), on the memory backend and an in-memory SQLite table:
//!
//! ```
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = gateway::Config::from_lookup(|name| {
//!     (name == "GATEWAY_ADDR").then(|| "127.0.0.1:0".to_owned())
//! })?;
//! let service = gateway::Gateway::start(&config).await?;
//! let listener = tokio::net::TcpListener::bind(config.addr).await?;
//! let base = format!("http://{}", listener.local_addr()?);
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(gateway::serve(service, listener, async {
//!     let _ = stopped.await;
//! }));
//! let price: serde_json::Value = reqwest::get(format!("{base}/v1/prices/gpt-4"))
//!     .await?
//!     .json()
//!     .await?;
//! assert_eq!(price["input_per_1k"], 0.03);
//! let _ = stop.send(());
//! server.await??;
//! # Ok(()) }
//! ```

mod app;
mod auth;
mod body;
mod config;
mod db;
mod error;
mod metrics;

pub use app::Gateway;
pub use config::{Config, DEFAULT_ADDR, DEFAULT_DATABASE_URL, DEFAULT_RATE_LIMIT};
pub use db::{ModelPrice, PriceTable};

/// Serves `gateway` on `listener` until `shutdown` completes, then lets the
/// requests under way finish.
pub async fn serve(
    gateway: Gateway,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, gateway.router())
        .with_graceful_shutdown(shutdown)
        .await
}
