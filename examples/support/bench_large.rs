//! The large-value cases: a realistic JSON document of about 16 KiB (a
//! product with 36 variants and 6 reviews, in the shape of a shop's product
//! API), SET then GET at 64 tasks, stored as the codec wrote it and
//! compressed with lz4; and the stored size of one value, read back from
//! Redis with `STRLEN`.

use std::time::Duration;

use cache_core::{Cache, Compression, TypedCache};
use serde::{Deserialize, Serialize};

use super::{BenchResult, TTL_SECS};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Variant {
    id: u64,
    sku: String,
    barcode: String,
    title: String,
    size: String,
    colour: String,
    price: f64,
    compare_at_price: Option<f64>,
    stock: u32,
    warehouse: String,
    weight_grams: u32,
    inventory_policy: String,
    requires_shipping: bool,
    taxable: bool,
    image: String,
    created_at: String,
    updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Review {
    author: String,
    stars: u8,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Product {
    id: u64,
    title: String,
    brand: String,
    description: String,
    categories: Vec<String>,
    variants: Vec<Variant>,
    reviews: Vec<Review>,
}

/// The words reviews are drawn from.
const REVIEW_WORDS: &str = "comfortable fits true to size the fabric is soft and washes \
    well colour faded a little after months great for hiking runs small order one up would \
    buy again";

/// A shop's product: varied ids, prices and dates, repeated field names and
/// values, as real documents have. About 16 KiB as JSON.
pub(crate) fn document() -> Product {
    // A small generator so that prices and stock look like data, not a pattern.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |below: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % below
    };
    let colours = ["black", "white", "navy", "forest green", "burgundy", "sand"];
    let sizes = ["XS", "S", "M", "L", "XL", "XXL"];
    let words: Vec<&str> = REVIEW_WORDS.split_whitespace().collect();
    let variants = (0..36)
        .map(|n| {
            let (size, colour) = (sizes[n % 6], colours[(n / 6) % 6]);
            let price = (4_000 + next(6_000)) as f64 / 100.0;
            Variant {
                id: 40_000_000_000 + next(1_000_000_000),
                sku: format!("TRL-{:04}-{size}", 1000 + next(9000)),
                barcode: format!("40{:011}", next(100_000_000_000)),
                title: format!("{colour} / {size}"),
                size: size.to_owned(),
                colour: colour.to_owned(),
                price,
                compare_at_price: (n % 3 == 0).then_some(price + 20.0),
                stock: next(250) as u32,
                warehouse: format!("eu-west-{}", 1 + next(3)),
                weight_grams: 480 + 20 * (n % 6) as u32,
                inventory_policy: "deny".into(),
                requires_shipping: true,
                taxable: true,
                image: format!(
                    "https://cdn.example.com/products/trailblazer/{}-{}.jpg",
                    colour.replace(' ', "-"),
                    size.to_lowercase()
                ),
                created_at: format!("2024-03-{:02}T09:{:02}:00Z", 1 + n % 28, next(60)),
                updated_at: format!("2024-11-{:02}T16:{:02}:00Z", 1 + next(28), next(60)),
            }
        })
        .collect();
    let reviews = (0..6)
        .map(|n| Review {
            author: format!("customer{}", next(100_000)),
            stars: 1 + next(5) as u8,
            text: (0..20 + next(25))
                .map(|_| words[next(words.len() as u64) as usize])
                .collect::<Vec<_>>()
                .join(" ")
                + &format!(" (order {n})"),
        })
        .collect();
    Product {
        id: 4_711,
        title: "Trailblazer waterproof hiking jacket".into(),
        brand: "Northwind Outdoor".into(),
        description: "A three-layer shell with taped seams, pit zips and a helmet-compatible \
                      hood. Packs into its own chest pocket."
            .into(),
        categories: vec!["outdoor".into(), "jackets".into(), "hiking".into()],
        variants,
        reviews,
    }
}

/// The two keyspaces of the large-value cases, and the document.
pub(crate) struct Large {
    plain: TypedCache<String, Product>,
    lz4: TypedCache<String, Product>,
    document: Product,
}

impl Large {
    pub(crate) fn new(cache: &Cache) -> BenchResult<Self> {
        let keyspace = |prefix: &str| cache.keyspace(prefix).ttl(Duration::from_secs(TTL_SECS));
        Ok(Large {
            plain: keyspace("bench-16k").typed()?,
            lz4: keyspace("bench-16k-lz4")
                .compress(Compression::Lz4)
                .typed()?,
            document: document(),
        })
    }

    fn view(&self, compressed: bool) -> &TypedCache<String, Product> {
        if compressed { &self.lz4 } else { &self.plain }
    }

    /// One SET and one GET of the document: two commands.
    pub(crate) async fn step(
        &self,
        compressed: bool,
        task: usize,
        slot: usize,
    ) -> BenchResult<u64> {
        let view = self.view(compressed);
        let key = format!("{task}:{slot}");
        view.set(&key, &self.document).await?;
        let _ = view.get(&key).await?;
        Ok(2)
    }

    /// The stored size of one value, as Redis holds it.
    pub(crate) async fn bytes_per_value(
        &self,
        raw: &mut redis::aio::MultiplexedConnection,
        compressed: bool,
    ) -> BenchResult<u64> {
        let view = self.view(compressed);
        view.set("size-probe", &self.document).await?;
        let mut strlen = redis::cmd("STRLEN");
        strlen.arg(view.key("size-probe"));
        Ok(strlen.query_async::<u64>(raw).await?)
    }
}
