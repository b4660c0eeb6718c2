//! Compression of large values on every backend (and behind Sentinel): every codec round-trips
//! with compression on, off and switched while both kinds are stored; the
//! frame is what the guide (`handle`, "Compression") says; bombs and cut frames are refused with
//! `Error::Decode` naming the key (and a cache-aside read heals them);
//! every write path compresses (batches, loads, derived types, `#[cached]`,
//! typed sets); a local tier serves compressed values; headers of fail-safe
//! and tags stay outside the frame; `max_value_size` holds both ways; the
//! counters show the bytes before and after.

use std::io::Write;
use std::time::Duration;

use cache_core::{Cache, Cacheable, Codec, Compression, Error, LoadPolicy};
use cache_tests::Env;
use serde::{Deserialize, Serialize};

cache_tests::backend_suite!(
    sentinel_too;
    every_codec_round_trips_with_compression_on_and_off,
    switching_compression_reads_both_kinds,
    bombs_and_cut_frames_are_refused_naming_the_key,
    every_write_path_compresses,
    a_local_tier_serves_compressed_values,
    fail_safe_and_tag_headers_stay_outside_the_frame,
    max_value_size_bounds_the_value_before_and_after_compression,
    counters_show_the_bytes_before_and_after,
    bincode_bytes_that_start_like_a_frame_read_back,
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Variant {
    sku: String,
    colour: String,
    price: f64,
    stock: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Product {
    id: u64,
    title: String,
    description: String,
    variants: Vec<Variant>,
}

/// A product of about `variants * 80` bytes of JSON, repetitive as real
/// catalogue documents are.
fn product(id: u64, variants: u32) -> Product {
    Product {
        id,
        title: format!("Trail running shoe {id}"),
        description: "Light, breathable and made for long distances. ".repeat(8),
        variants: (0..variants)
            .map(|n| Variant {
                sku: format!("SKU-{id}-{n:05}"),
                colour: ["red", "blue", "black", "grey"][n as usize % 4].to_owned(),
                price: 89.5 + f64::from(n % 7),
                stock: n * 3 % 41,
            })
            .collect(),
    }
}

fn codecs() -> [Codec; 3] {
    [Codec::Json, Codec::Bincode, Codec::MsgPack]
}

fn algorithms() -> [Option<Compression>; 3] {
    [None, Some(Compression::Lz4), Some(Compression::Zstd)]
}

/// The stored bytes of `full_key`, read around the library.
async fn stored(env: &Env, full_key: &str) -> Vec<u8> {
    let raw = env.cache.raw_get(full_key).await;
    raw.unwrap_or_else(|err| panic!("raw read of {full_key}: {err}"))
        .unwrap_or_else(|| panic!("nothing stored at {full_key}"))
}

/// Whether bytes are a compressed frame (`0xFF 'z'`, method 1 or 2).
fn is_compressed(bytes: &[u8]) -> bool {
    bytes.len() > 7 && bytes[..2] == [0xFF, b'z'] && matches!(bytes[2], 1 | 2)
}

async fn every_codec_round_trips_with_compression_on_and_off(env: Env) {
    let (large, small) = (product(1, 200), product(2, 1));
    for codec in codecs() {
        for algorithm in algorithms() {
            let prefix = format!(
                "p-{}-{}",
                codec.name(),
                algorithm.map_or("off", |a| a.name())
            );
            let mut keyspace = env.cache.keyspace(&prefix).codec(codec);
            if let Some(algorithm) = algorithm {
                keyspace = keyspace.compress(algorithm);
            }
            let products = keyspace.typed::<u64, Product>().unwrap();
            products.set(&1, &large).await.unwrap();
            products.set(&2, &small).await.unwrap();
            let what = format!("{codec:?} {algorithm:?}");
            assert_eq!(
                products.get(&1).await.unwrap().as_ref(),
                Some(&large),
                "{what}"
            );
            assert_eq!(
                products.get(&2).await.unwrap().as_ref(),
                Some(&small),
                "{what}"
            );
            let plain = codec.encode(&large).unwrap();
            let big = stored(&env, &products.key(&1)).await;
            let little = stored(&env, &products.key(&2)).await;
            assert!(!is_compressed(&little), "{what}: a small value stays plain");
            if algorithm.is_some() {
                assert!(is_compressed(&big), "{what}");
                assert!(
                    big.len() * 3 <= plain.len(),
                    "{what}: {} of {}",
                    big.len(),
                    plain.len()
                );
            } else {
                assert_eq!(big, plain, "{what}: without compression, the codec's bytes");
            }
        }
    }
}

async fn switching_compression_reads_both_kinds(env: Env) {
    for codec in codecs() {
        let prefix = format!("switch-{}", codec.name());
        let plain_view = env.cache.keyspace(&prefix).codec(codec);
        let plain_view = plain_view.typed::<u64, Product>().unwrap();
        let lz4_view = env
            .cache
            .keyspace(&prefix)
            .codec(codec)
            .compress(Compression::Lz4);
        let lz4_view = lz4_view.typed::<u64, Product>().unwrap();
        let zstd_view = env
            .cache
            .keyspace(&prefix)
            .codec(codec)
            .compress(Compression::Zstd);
        let zstd_view = zstd_view.typed::<u64, Product>().unwrap();
        // Written before compression was on: the codec's bytes alone.
        let before = product(1, 150);
        env.write_raw(&plain_view.key(&1), &codec.encode(&before).unwrap())
            .await;
        plain_view.set(&2, &product(2, 150)).await.unwrap();
        lz4_view.set(&3, &product(3, 150)).await.unwrap();
        zstd_view.set(&4, &product(4, 150)).await.unwrap();
        for view in [&plain_view, &lz4_view, &zstd_view] {
            let keys = [1, 2, 3, 4];
            let got = view
                .get_many(&keys.iter().collect::<Vec<_>>())
                .await
                .unwrap();
            let want: Vec<_> = keys.iter().map(|id| Some(product(*id, 150))).collect();
            assert_eq!(got, want, "{codec:?}");
        }
        assert!(!is_compressed(&stored(&env, &plain_view.key(&2)).await));
        assert_eq!(stored(&env, &lz4_view.key(&3)).await[2], 1, "lz4");
        assert_eq!(stored(&env, &zstd_view.key(&4)).await[2], 2, "zstd");
    }
}

/// A zstd frame of `inflated` zero bytes, under a header that says `says`.
fn zstd_bomb(inflated: usize, says: u32) -> Vec<u8> {
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), 19).unwrap();
    let chunk = vec![0_u8; 1 << 16];
    for _ in 0..inflated / chunk.len() {
        encoder.write_all(&chunk).unwrap();
    }
    let body = encoder.finish().unwrap();
    [&[0xFF, b'z', 2][..], &says.to_be_bytes(), &body].concat()
}

async fn bombs_and_cut_frames_are_refused_naming_the_key(env: Env) {
    let products = env.cache.keyspace("bomb").compress(Compression::Zstd);
    let products = products.typed::<u64, Product>().unwrap();
    // 32 MiB of zeros in about a kilobyte: over the 16 MiB max_value_size.
    let bomb = zstd_bomb(32 << 20, 32 << 20);
    assert!(bomb.len() < 4096, "{}", bomb.len());
    // The same bytes under a header that lies about their size.
    let liar = zstd_bomb(32 << 20, 1 << 10);
    // A frame that says a gigabyte.
    let gigabyte = [
        &[0xFF, b'z', 1][..],
        &(1_u32 << 30).to_be_bytes(),
        &[0; 1017],
    ]
    .concat();
    let mut cut = stored_frame_of(&env, &products, 9).await;
    cut.truncate(cut.len() - 10);
    for (id, bytes) in [(1, &bomb), (2, &liar), (3, &gigabyte), (4, &cut)] {
        env.write_raw(&products.key(&id), bytes).await;
        let error = products.get(&id).await.unwrap_err();
        assert!(
            matches!(&error, Error::Decode { key, .. } if *key == products.key(&id)),
            "{id}: {error}"
        );
        assert!(error.to_string().contains(&products.key(&id)), "{error}");
    }
    let error = products.get(&1).await.unwrap_err().to_string();
    assert!(error.contains("max_value_size"), "{error}");
    // A cache-aside read treats it as a miss and stores a good value.
    let loaded = products
        .get_or_load(&1, || async { Some(product(1, 100)) })
        .await;
    assert_eq!(loaded.unwrap(), Some(product(1, 100)));
    assert!(is_compressed(&stored(&env, &products.key(&1)).await));
    assert!(env.cache.stats().decode_errors >= 5);
}

/// A good compressed frame stored through `products` at `id`.
async fn stored_frame_of(
    env: &Env,
    products: &cache_core::TypedCache<u64, Product>,
    id: u64,
) -> Vec<u8> {
    products.set(&id, &product(id, 100)).await.unwrap();
    let bytes = stored(env, &products.key(&id)).await;
    assert!(is_compressed(&bytes));
    bytes
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Cacheable)]
#[cache(
    prefix = "catalogue",
    ttl = "5m",
    compress = "lz4",
    compress_min = "1KiB"
)]
struct Catalogue {
    #[cache(key)]
    shop: String,
    products: Vec<Product>,
}

#[cache_core::cached(cache = cache, prefix = "page", ttl = "1m", compress = "zstd", key = id)]
async fn render(cache: &Cache, id: u64) -> Result<String, cache_core::Error> {
    Ok(format!("<li>item {id}</li>").repeat(500))
}

async fn every_write_path_compresses(env: Env) {
    let products = env.cache.keyspace("paths").compress(Compression::Lz4);
    let products = products.typed::<u64, Product>().unwrap();
    let (one, two) = (product(1, 100), product(2, 100));
    products.set_many(&[(&1, &one), (&2, &two)]).await.unwrap();
    let loaded = products
        .get_or_load(&3, || async { Some(product(3, 100)) })
        .await;
    assert_eq!(loaded.unwrap(), Some(product(3, 100)));
    let many = products.get_or_load_many(&[4, 5], |missing| async move {
        missing.into_iter().map(|id| (id, product(id, 100)))
    });
    assert_eq!(
        many.await.unwrap(),
        [Some(product(4, 100)), Some(product(5, 100))]
    );
    for id in 1..=5 {
        assert!(
            is_compressed(&stored(&env, &products.key(&id)).await),
            "{id}"
        );
    }
    assert_eq!(
        products.get_many(&[&1, &4]).await.unwrap(),
        [Some(one), Some(product(4, 100))]
    );

    let catalogue = Catalogue {
        shop: "north".into(),
        products: vec![product(7, 60)],
    };
    assert_eq!(Catalogue::COMPRESS.map(|c| c.min_size), Some(1024));
    let catalogues = env.cache.typed::<Catalogue>().unwrap();
    catalogues.put(&catalogue).await.unwrap();
    assert!(is_compressed(&stored(&env, &catalogues.key("north")).await));
    assert_eq!(catalogues.get("north").await.unwrap(), Some(catalogue));

    let page = render(&env.cache, 7).await.unwrap();
    let stored_page = stored(&env, &render_key(&env.cache, 7)).await;
    assert_eq!(stored_page[..3], [0xFF, b'z', 2]);
    assert_eq!(render(&env.cache, 7).await.unwrap(), page);

    let sets = env
        .cache
        .keyspace("big-members")
        .compress(Compression::Lz4)
        .compress_min(64);
    let sets = sets.typed_set::<str, Product>().unwrap();
    let members = [product(1, 20), product(2, 20)];
    sets.add("shelf", &members).await.unwrap();
    assert!(sets.contains("shelf", &product(2, 20)).await.unwrap());
    let mut listed = sets.members("shelf").await.unwrap().unwrap();
    listed.sort_by_key(|product| product.id);
    assert_eq!(listed, members);
    assert_eq!(sets.remove("shelf", &[product(1, 20)]).await.unwrap(), 1);
}

async fn a_local_tier_serves_compressed_values(env: Env) {
    let products = env.cache.keyspace("local-z").compress(Compression::Lz4);
    let products = products
        .local(100, Duration::from_secs(30))
        .typed::<u64, Product>();
    let products = products.unwrap();
    cache_tests::local_tier_live(|| products.local_is_live()).await;
    products.set(&1, &product(1, 200)).await.unwrap();
    for _ in 0..3 {
        assert_eq!(products.get(&1).await.unwrap(), Some(product(1, 200)));
        let shared = products.get_shared(&1).await.unwrap();
        assert_eq!(shared.as_deref(), Some(&product(1, 200)));
    }
    let stats = env.cache.stats();
    assert!(stats.local_hits >= 4, "{stats:?}");
    assert!(is_compressed(&stored(&env, &products.key(&1)).await));
}

async fn fail_safe_and_tag_headers_stay_outside_the_frame(env: Env) {
    let policy = LoadPolicy::DEFAULT.fail_safe(Duration::from_secs(60));
    let products = env
        .cache
        .keyspace("wrapped")
        .ttl(Duration::from_secs(30))
        .tagged();
    let products = products.load_policy(policy).compress(Compression::Zstd);
    let products = products.typed::<u64, Product>().unwrap();
    products
        .set_tagged(&1, &product(1, 200), &["shop:north"])
        .await
        .unwrap();
    let bytes = stored(&env, &products.key(&1)).await;
    assert_eq!(bytes[..3], [0xFF, b'f', b's'], "the fail-safe header first");
    assert_eq!(bytes[12..15], [0xFF, b't', b'g'], "then the tag header");
    let frame = bytes.windows(3).position(|w| w == [0xFF, b'z', 2]);
    assert!(frame.is_some_and(|at| at > 15), "then the frame");
    assert_eq!(products.get(&1).await.unwrap(), Some(product(1, 200)));
    env.cache.invalidate_tag("shop:north").await.unwrap();
    assert_eq!(products.get(&1).await.unwrap(), None);
}

async fn max_value_size_bounds_the_value_before_and_after_compression(env: Env) {
    let Some(builder) = env.another_handle() else {
        let cache = Cache::builder()
            .max_value_size(8 << 10)
            .build_memory()
            .unwrap();
        return check_max_value_size(&cache).await;
    };
    let cache = builder.max_value_size(8 << 10).build().await.unwrap();
    check_max_value_size(&cache).await;
}

async fn check_max_value_size(cache: &Cache) {
    let products = cache.keyspace("max").compress(Compression::Lz4);
    let products = products.typed::<u64, Product>().unwrap();
    // About 6 KiB of JSON, stored in well under 2 KiB: accepted.
    let fits = product(1, 60);
    assert!(Codec::Json.encode(&fits).unwrap().len() < 8 << 10);
    products.set(&1, &fits).await.unwrap();
    assert_eq!(products.get(&1).await.unwrap(), Some(fits));
    // About 16 KiB of JSON that compresses under 8 KiB: refused all the
    // same, since no reader inflates past max_value_size.
    let over = product(2, 200);
    let size = Codec::Json.encode(&over).unwrap().len();
    match products.set(&2, &over).await {
        Err(Error::ValueTooLarge {
            key,
            size: said,
            max,
            ..
        }) => {
            assert_eq!((key, said, max), (products.key(&2), size, 8 << 10));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(products.get(&2).await.unwrap(), None);
}

async fn counters_show_the_bytes_before_and_after(env: Env) {
    let products = env.cache.keyspace("counted").compress(Compression::Lz4);
    let products = products.typed::<u64, Product>().unwrap();
    let plain = env
        .cache
        .keyspace("uncounted")
        .typed::<u64, Product>()
        .unwrap();
    let (large, small) = (product(1, 200), product(2, 1));
    products.set(&1, &large).await.unwrap();
    products.set(&2, &small).await.unwrap();
    plain.set(&1, &large).await.unwrap();
    let stats = env.cache.stats();
    let input =
        Codec::Json.encode(&large).unwrap().len() + Codec::Json.encode(&small).unwrap().len();
    let output =
        stored(&env, &products.key(&1)).await.len() + stored(&env, &products.key(&2)).await.len();
    assert_eq!(stats.compress_input_bytes, input as u64);
    assert_eq!(stats.compress_output_bytes, output as u64);
    assert!(
        stats.compress_output_bytes * 3 < stats.compress_input_bytes,
        "{stats:?}"
    );
}

async fn bincode_bytes_that_start_like_a_frame_read_back(env: Env) {
    // bincode writes a u8 as it is: this value's bytes start `0xFF 'z' 0x01`.
    let tricky = (255_u8, b'z', 1_u8, "x".repeat(10));
    for algorithm in [None, Some(Compression::Lz4)] {
        let prefix = format!("tricky-{}", algorithm.map_or("off", |a| a.name()));
        let mut keyspace = env.cache.keyspace(&prefix).codec(Codec::Bincode);
        if let Some(algorithm) = algorithm {
            keyspace = keyspace.compress(algorithm);
        }
        let values = keyspace.typed::<u64, (u8, u8, u8, String)>().unwrap();
        values.set(&1, &tricky).await.unwrap();
        assert_eq!(values.get(&1).await.unwrap(), Some(tricky.clone()));
        let bytes = stored(&env, &values.key(&1)).await;
        assert_eq!(bytes[..3], [0xFF, b'z', 0], "kept in a frame of its own");
        assert_eq!(bytes[7..], Codec::Bincode.encode(&tricky).unwrap());
    }
}

#[derive(Serialize, Deserialize, Cacheable)]
#[cache(prefix = "default-threshold", compress = "zstd")]
struct DefaultThreshold(String);

#[test]
fn the_derive_and_the_builder_share_the_default_threshold() {
    let settings = cache_core::CompressSettings::new(Compression::Zstd, 1024);
    assert_eq!(DefaultThreshold::COMPRESS, Some(settings));
    assert_eq!(cache_core::DEFAULT_COMPRESS_MIN, 1024);
    let error = Cache::memory()
        .keyspace("t")
        .compress_min(10)
        .typed::<u64, String>();
    let error = error.unwrap_err().to_string();
    assert!(
        error.contains("compress_min on `t` needs compress"),
        "{error}"
    );
}
