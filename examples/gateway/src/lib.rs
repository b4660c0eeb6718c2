//! An LLM gateway on cache-core: an axum service in front of a price table
//! in a real database, with the cache's building blocks where a real service
//! needs them.
//!
//! - `GET /v1/prices/{model}`: cache-aside with stampede protection,
//!   fail-open (served from the database while Redis is down).
//! - `PUT /v1/prices/{model}` (admin): updates the table and drops the
//!   cached price.
//! - `POST /v1/login`, `POST /v1/logout`: demo HS256 tokens; logout revokes
//!   the token until its expiry.
//! - `POST /v1/chat`: fail-closed token check against the revoked flags,
//!   a sliding-window rate limit per user (429 with `Retry-After`), a call
//!   counter and a per-user message sequence number.
//! - `GET /stats`: the cache's counters and the database reads.
//!
//! Configured from the environment: see [`Config`].

mod app;
mod auth;
mod config;
mod db;
mod error;

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
