//! The routes and what each one does with the cache and the database.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use cache_core::{Cache, Flags, RateLimit, RateLimiter, Sequences, TypedCache, cached};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Claims, Tokens};
use crate::body::Body;
use crate::config::Config;
use crate::db::{ModelPrice, PriceTable};
use crate::error::ApiError;

/// What every handler shares; cheap to clone.
#[derive(Clone)]
pub struct Gateway(Arc<Parts>);

struct Parts {
    cache: Cache,
    table: PriceTable,
    /// Token ids revoked before their expiry.
    revoked: Flags<str>,
    limiter: RateLimiter<str>,
    /// API calls per user, counted per minute.
    calls: TypedCache<String, i64>,
    sequences: Sequences<str>,
    tokens: Tokens,
    admin_token: Option<String>,
}

impl Gateway {
    /// Connects to the cache and the database `config` names.
    pub async fn start(config: &Config) -> Result<Self, String> {
        let cache = connect_cache(config).await?;
        let table = PriceTable::open(&config.database_url)
            .await
            .map_err(|err| {
                let url = cache_core::redact::url(&config.database_url);
                format!("cannot open the database {url}: {err}")
            })?;
        Self::new(cache, table, config)
    }

    /// A gateway over `cache` and `table`.
    pub fn new(cache: Cache, table: PriceTable, config: &Config) -> Result<Self, String> {
        // Before the views below register their counters. Without it (another
        // recorder in the process), `/metrics` says why and the rest works.
        if let Err(err) = crate::metrics::exporter() {
            eprintln!("gateway: no /metrics: {err}");
        }
        let failed = |what: &str, err: cache_core::Error| format!("{what}: {err}");
        let rule = RateLimit::sliding_window(config.rate_limit, Duration::from_secs(60));
        let parts = Parts {
            revoked: cache
                .keyspace("revoked-token")
                .flags::<str>()
                .map_err(|err| failed("revoked-token flags", err))?,
            limiter: cache
                .keyspace("chat-limit")
                .rate_limiter::<str>(rule)
                .map_err(|err| failed("chat rate limiter", err))?,
            calls: cache
                .keyspace("api-calls")
                .ttl(Duration::from_secs(60))
                .typed::<String, i64>()
                .map_err(|err| failed("api-calls counters", err))?,
            sequences: cache
                .keyspace("message-seq")
                .sequences::<str>(1_000)
                .map_err(|err| failed("message sequences", err))?,
            tokens: Tokens::new(&config.jwt_secret),
            admin_token: config.admin_token.clone(),
            cache,
            table,
        };
        Ok(Gateway(Arc::new(parts)))
    }

    /// A model's price: from the cache, else from the table (one read per
    /// cold model however many requests ask at once). Fail-open: served from
    /// the table while Redis is down. A database error is never cached; an
    /// unknown model is, for a minute. Hot prices are kept in process for up
    /// to 5 s (a price update drops them at once on this instance, and
    /// within Redis' invalidation delay on the others).
    #[cached(
        cache = self.0.cache,
        prefix = "price",
        ttl = "5m",
        negative_ttl = "1m",
        local(capacity = 10_000, ttl = "5s"),
        key = model
    )]
    async fn price_of(&self, model: &str) -> Result<Option<ModelPrice>, PriceError> {
        self.0
            .table
            .price(model)
            .await
            .map_err(PriceError::Database)
    }

    /// The HTTP routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/prices/{model}", get(price).put(update_price))
            .route("/v1/login", post(login))
            .route("/v1/logout", post(logout))
            .route("/v1/chat", post(chat))
            .route("/stats", get(stats))
            .route("/metrics", get(crate::metrics::render))
            .fallback(no_route)
            .method_not_allowed_fallback(wrong_method)
            .layer(axum::middleware::from_fn(crate::metrics::track))
            .with_state(self.clone())
    }
}

/// The Sentinel master `REDIS_SENTINEL_MASTER` and `REDIS_SENTINELS` name,
/// else the cluster `REDIS_CLUSTER_NODES` names, else the server `REDIS_URL`
/// names, else the embedded memory backend. Connected lazily, so the
/// service starts (and serves prices from the database) while Redis is down.
async fn connect_cache(config: &Config) -> Result<Cache, String> {
    let builder = Cache::builder()
        .namespace(&config.namespace)
        .timeout(config.redis_timeout)
        .lazy_connect(true);
    let built = match (&config.sentinels, &config.cluster_nodes, &config.redis_url) {
        (Some((master, sentinels)), _, _) => {
            builder.sentinel(master, sentinels.clone()).build().await
        }
        (None, Some(nodes), _) => builder.cluster_nodes(nodes.clone()).build().await,
        (None, None, Some(url)) => builder.url(url).build().await,
        (None, None, None) => builder.build_memory(),
    };
    built.map_err(|err| format!("cannot set up the cache: {err}"))
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
}

/// Why a price could not be read.
#[derive(Debug)]
enum PriceError {
    Database(sqlx::Error),
    Cache(cache_core::Error),
}

impl std::fmt::Display for PriceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PriceError::Database(err) => err.fmt(f),
            PriceError::Cache(err) => err.fmt(f),
        }
    }
}

impl From<cache_core::Error> for PriceError {
    fn from(err: cache_core::Error) -> Self {
        PriceError::Cache(err)
    }
}

/// `GET /v1/prices/{model}`: [`Gateway::price_of`]; 404 for an unknown model.
async fn price(
    State(gateway): State<Gateway>,
    Path(model): Path<String>,
) -> Result<Json<ModelPrice>, ApiError> {
    match gateway.price_of(&model).await {
        Ok(Some(price)) => Ok(Json(price)),
        Ok(None) => Err(ApiError::not_found(format!("no price for model `{model}`"))),
        // The database failed: this request's read, or the one it waited for.
        Err(
            err @ (PriceError::Database(_) | PriceError::Cache(cache_core::Error::Load { .. })),
        ) => Err(ApiError::unavailable(format!(
            "cannot read the price of `{model}` from the database: {err}"
        ))),
        Err(PriceError::Cache(err)) => Err(ApiError::cache(&format!("price of `{model}`"), &err)),
    }
}

#[derive(Deserialize)]
struct NewPrice {
    input_per_1k: f64,
    output_per_1k: f64,
}

/// `PUT /v1/prices/{model}` (admin): writes the table, then drops the cached
/// price, so the next read loads the new one.
async fn update_price(
    State(gateway): State<Gateway>,
    Path(model): Path<String>,
    headers: HeaderMap,
    Body(new): Body<NewPrice>,
) -> Result<Json<ModelPrice>, ApiError> {
    let Some(admin) = &gateway.0.admin_token else {
        return Err(ApiError::forbidden(
            "price updates are off: start the gateway with GATEWAY_ADMIN_TOKEN set",
        ));
    };
    if !crate::auth::same_secret(crate::auth::bearer(authorization(&headers))?, admin) {
        return Err(ApiError::forbidden("not the admin token"));
    }
    let valid = |price: f64| price.is_finite() && price >= 0.0;
    if !valid(new.input_per_1k) || !valid(new.output_per_1k) {
        return Err(ApiError::bad_request(
            "input_per_1k and output_per_1k must be finite and not negative",
        ));
    }
    let price = ModelPrice {
        model: model.clone(),
        input_per_1k: new.input_per_1k,
        output_per_1k: new.output_per_1k,
    };
    gateway.0.table.upsert(&price).await.map_err(|err| {
        ApiError::unavailable(format!("cannot write the price of `{model}`: {err}"))
    })?;
    if let Err(err) = gateway.price_of_invalidate(&model).await {
        // The table has the new price; a stale cached one may stay up to its TTL.
        return Err(ApiError::cache(
            &format!(
                "price of `{model}` saved, but its cached copy was not dropped; send the PUT again"
            ),
            &err,
        ));
    }
    Ok(Json(price))
}

#[derive(Deserialize)]
struct Login {
    user: String,
}

/// `POST /v1/login`: a demo sign-in, no password; returns a token.
async fn login(
    State(gateway): State<Gateway>,
    Body(login): Body<Login>,
) -> Result<Json<Value>, ApiError> {
    let user = login.user.trim();
    if user.is_empty() || user.len() > 64 {
        return Err(ApiError::bad_request("`user` must be 1 to 64 characters"));
    }
    let (token, claims) = gateway.0.tokens.issue(user)?;
    Ok(Json(json!({ "token": token, "expires_at": claims.exp })))
}

/// `POST /v1/logout`: revokes the token until its own expiry.
async fn logout(
    State(gateway): State<Gateway>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let claims = gateway.0.tokens.check(authorization(&headers))?;
    let revoke = gateway
        .0
        .revoked
        .raise_until(&claims.jti, claims.expires_at());
    revoke
        .await
        .map_err(|err| ApiError::cache("revoking the token", &err))?;
    Ok(Json(json!({ "revoked": true, "until": claims.exp })))
}

/// A token that is valid and not revoked. Fail-closed: when the revocation
/// flags cannot be read, the request is refused (503), never let through.
async fn signed_in(gateway: &Gateway, headers: &HeaderMap) -> Result<Claims, ApiError> {
    let claims = gateway.0.tokens.check(authorization(headers))?;
    let revoked = gateway.0.revoked.is_raised(&claims.jti).await;
    match revoked {
        Ok(false) => Ok(claims),
        Ok(true) => Err(ApiError::unauthorized("this token was revoked")),
        Err(err) => Err(ApiError::cache("checking the token", &err)),
    }
}

#[derive(Deserialize)]
struct ChatRequest {
    message: String,
}

/// `POST /v1/chat`: signed in, within the rate limit; counts the call and
/// gives the message the user's next sequence number.
async fn chat(
    State(gateway): State<Gateway>,
    headers: HeaderMap,
    Body(request): Body<ChatRequest>,
) -> Result<Json<Value>, ApiError> {
    let claims = signed_in(&gateway, &headers).await?;
    let user = claims.sub.as_str();
    let decision = gateway
        .0
        .limiter
        .hit(user)
        .await
        .map_err(|err| ApiError::cache("checking the rate limit", &err))?;
    if !decision.allowed {
        let seconds = decision.reset_after.as_secs_f64().ceil().max(1.0);
        return Err(ApiError::too_many_requests(
            format!("rate limit reached for `{user}`"),
            // Whole seconds, at least one; a window is a minute.
            seconds.min(3600.0) as u64,
        ));
    }
    let calls = gateway
        .0
        .calls
        .incr(user, 1)
        .await
        .map_err(|err| ApiError::cache("counting the call", &err))?;
    let seq = gateway
        .0
        .sequences
        .next(user)
        .await
        .map_err(|err| ApiError::cache("numbering the message", &err))?;
    Ok(Json(json!({
        "user": user,
        "seq": seq.value,
        "calls_this_minute": calls,
        "remaining": decision.remaining,
        "reply": format!("echo: {}", request.message),
    })))
}

async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route {}", uri.path()))
}

async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    let message = format!("{method} is not allowed on {}", uri.path());
    ApiError::with_status(axum::http::StatusCode::METHOD_NOT_ALLOWED, message)
}

/// `GET /stats`: the cache's counters and the database reads.
async fn stats(State(gateway): State<Gateway>) -> Json<Value> {
    let stats = gateway.0.cache.stats();
    Json(json!({
        "cache": {
            "hits": stats.hits,
            "local_hits": stats.local_hits,
            "misses": stats.misses,
            "loads": stats.loads,
            "load_errors": stats.load_errors,
            "coalesced_waits": stats.coalesced_waits,
            "negative_hits": stats.negative_hits,
            "refreshes": stats.refreshes,
            "decode_errors": stats.decode_errors,
            "backend_errors": stats.backend_errors,
            "timeouts": stats.timeouts,
        },
        "database_reads": gateway.0.table.reads(),
    }))
}
