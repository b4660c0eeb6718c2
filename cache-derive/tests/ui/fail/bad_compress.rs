#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(compress = "gzip", compress_min = "1KB")]
struct UnknownAlgorithmAndUnit(u64);

#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(compress_min = 4096)]
struct ThresholdWithoutCompression(u64);

#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(compress = "zstd", compress_min = "1024MiB")]
struct ThresholdTooLarge(u64);

#[cache_core::cached(cache = cache, compress = "brotli")]
async fn cached_unknown(cache: &cache_core::Cache, id: u64) -> Result<u64, cache_core::Error> {
    Ok(id)
}

fn main() {}
