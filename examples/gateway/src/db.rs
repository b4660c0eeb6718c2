//! The price table: SQLite (the embedded default) or PostgreSQL, through
//! sqlx's `Any` driver, created and seeded at start. It counts its reads, so
//! the service can show how many reached the database.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};

/// A model's price per 1,000 tokens, as the API shows it and the cache holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelPrice {
    /// The model's name, e.g. `gpt-4o`.
    pub model: String,
    /// Dollars per 1,000 input tokens.
    pub input_per_1k: f64,
    /// Dollars per 1,000 output tokens.
    pub output_per_1k: f64,
}

/// The rows every new database starts with.
const SEED: [(&str, f64, f64); 3] = [
    ("gpt-4", 0.03, 0.06),
    ("gpt-4o", 0.0025, 0.01),
    ("claude-3-opus", 0.015, 0.075),
];

/// The price table and how many reads reached it.
#[derive(Clone, Debug)]
pub struct PriceTable {
    pool: AnyPool,
    reads: Arc<AtomicU64>,
}

impl PriceTable {
    /// Connects to `url`, creates the table if needed and seeds it.
    pub async fn open(url: &str) -> Result<Self, sqlx::Error> {
        install_default_drivers();
        let in_memory = url.starts_with("sqlite::memory:") || url.contains("mode=memory");
        let options = if in_memory {
            // Every connection to an in-memory SQLite database is a database
            // of its own: keep exactly one, for the life of the service.
            AnyPoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            AnyPoolOptions::new().max_connections(8)
        };
        let pool = options.connect(url).await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS model_prices (
                model TEXT PRIMARY KEY,
                input_per_1k DOUBLE PRECISION NOT NULL,
                output_per_1k DOUBLE PRECISION NOT NULL
            )",
        )
        .execute(&pool)
        .await?;
        for (model, input, output) in SEED {
            sqlx::query(
                "INSERT INTO model_prices (model, input_per_1k, output_per_1k)
                 VALUES ($1, $2, $3) ON CONFLICT (model) DO NOTHING",
            )
            .bind(model)
            .bind(input)
            .bind(output)
            .execute(&pool)
            .await?;
        }
        Ok(PriceTable {
            pool,
            reads: Arc::default(),
        })
    }

    /// The price of `model`, if the table has one.
    pub async fn price(&self, model: &str) -> Result<Option<ModelPrice>, sqlx::Error> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let row = sqlx::query(
            "SELECT model, input_per_1k, output_per_1k FROM model_prices WHERE model = $1",
        )
        .bind(model)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(ModelPrice {
                model: row.try_get("model")?,
                input_per_1k: row.try_get("input_per_1k")?,
                output_per_1k: row.try_get("output_per_1k")?,
            })
        })
        .transpose()
    }

    /// Writes `price`, replacing the model's row if there is one.
    pub async fn upsert(&self, price: &ModelPrice) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO model_prices (model, input_per_1k, output_per_1k) VALUES ($1, $2, $3)
             ON CONFLICT (model) DO UPDATE
             SET input_per_1k = excluded.input_per_1k, output_per_1k = excluded.output_per_1k",
        )
        .bind(&price.model)
        .bind(price.input_per_1k)
        .bind(price.output_per_1k)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How many price reads reached the database since start.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
}
