// These UI tests build cache-core without its `lz4` and `zstd` features.
#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(compress = "lz4")]
struct A(u64);

#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(compress = "zstd", compress_min = 512)]
struct B(u64);

fn main() {}
