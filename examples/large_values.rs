//! Large values, compressed: a shop's product pages (about 15 KiB of JSON
//! each) stored with lz4, what they take in Redis, a reader that has
//! compression off on the same keyspace, and the byte counters.
//!
//! ```text
//! cargo run --example large_values
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example large_values
//! ```

mod support;

use std::time::Duration;

use cache_core::{Cacheable, Codec};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Variant {
    sku: String,
    colour: String,
    size: String,
    price: f64,
    stock: u32,
    image: String,
}

/// A product page's data, compressed from 1 KiB up (the default threshold).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Cacheable)]
#[cache(
    prefix = "product-page",
    ttl = "10m",
    compress = "lz4",
    compress_min = "1KiB"
)]
struct ProductPage {
    #[cache(key)]
    id: u64,
    title: String,
    description: String,
    variants: Vec<Variant>,
}

fn page(id: u64) -> ProductPage {
    let colours = ["black", "white", "navy", "sand", "olive"];
    let sizes = ["XS", "S", "M", "L", "XL", "XXL"];
    let variants = (0..120_u32)
        .map(|n| {
            let (colour, size) = (colours[n as usize % 5], sizes[n as usize % 6]);
            Variant {
                sku: format!("P{id}-{colour}-{size}-{n}"),
                colour: colour.to_owned(),
                size: size.to_owned(),
                price: 49.0 + f64::from(n % 9) * 2.5,
                stock: (n * 37 + 11) % 90,
                image: format!("https://cdn.example.com/p/{id}/{colour}.jpg"),
            }
        })
        .collect();
    ProductPage {
        id,
        title: format!("Merino travel hoodie #{id}"),
        description: "Soft merino wool that keeps its shape on long trips. ".repeat(6),
        variants,
    }
}

#[tokio::main]
async fn main() -> Result<(), cache_core::BoxError> {
    let cache = support::connect("large-values").await?;
    let pages = cache.typed::<ProductPage>()?;

    // Stored compressed: the stored bytes are a fraction of the JSON.
    let hoodie = page(7);
    pages.put(&hoodie).await?;
    let json = Codec::Json.encode(&hoodie)?.len();
    let stored = cache.raw_get(&pages.key(&7)).await?.map_or(0, |b| b.len());
    println!(
        "product page 7: {json} bytes of JSON, {stored} bytes in Redis ({:.0}%)",
        100.0 * stored as f64 / json as f64
    );
    assert!(stored * 3 < json, "lz4 should store well under a third");
    assert_eq!(pages.get(&7).await?, Some(hoodie.clone()));

    // A service whose build has compression off for this keyspace (say, one
    // not upgraded yet) reads the compressed page, and what it writes plain
    // is read by everyone else: no flush when compression is switched.
    let plain_reader = cache
        .keyspace(ProductPage::PREFIX)
        .ttl(Duration::from_secs(600))
        .typed::<u64, ProductPage>()?;
    assert_eq!(plain_reader.get(&7).await?, Some(hoodie));
    plain_reader.set(&8, &page(8)).await?;
    let plain = cache.raw_get(&pages.key(&8)).await?.map_or(0, |b| b.len());
    println!("product page 8, written without compression: {plain} bytes in Redis");
    assert_eq!(pages.get(&8).await?, Some(page(8)));

    // A page for the cache-aside path: loaded once, stored compressed.
    let loaded = pages.get_or_load(&9, || async { Some(page(9)) }).await?;
    assert_eq!(loaded, Some(page(9)));

    let stats = cache
        .keyspace_stats(ProductPage::PREFIX)
        .unwrap_or_default();
    println!(
        "written through the compressed view: {} bytes encoded, {} bytes stored",
        stats.compress_input_bytes, stats.compress_output_bytes
    );
    assert!(stats.compress_output_bytes * 3 < stats.compress_input_bytes);
    Ok(())
}
