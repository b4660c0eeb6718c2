//! Hand-written `Cacheable` impls: every constant such an impl can supply is
//! checked by `Cache::typed` as `KeyspaceBuilder::typed` checks the same
//! setting, with the same error; a value that the builder refuses never
//! reaches the engine (a jitter of 1 or more used to panic there).

use std::time::Duration;

use cache_core::{
    Cache, Cacheable, Codec, CompressSettings, Compression, LoadPolicy, LocalSettings,
};
use serde::{Deserialize, Serialize};

/// A value type whose `Cacheable` constants come from the macro's arguments.
macro_rules! hand_written {
    ($name:ident { $($item:tt)* }) => {
        #[derive(Serialize, Deserialize)]
        struct $name(u64);
        impl Cacheable for $name {
            type Key = u64;
            $($item)*
        }
    };
}

hand_written!(BadPrefix { const PREFIX: &'static str = "a:b"; });
hand_written!(EmptyPrefix { const PREFIX: &'static str = ""; });
hand_written!(VersionZero { const PREFIX: &'static str = "v0"; const VERSION: u32 = 0; });
hand_written!(ZeroTtl {
    const PREFIX: &'static str = "ttl0";
    const TTL: Option<Duration> = Some(Duration::ZERO);
});
hand_written!(WholeJitter {
    const PREFIX: &'static str = "jitter";
    const LOAD: LoadPolicy = LoadPolicy::DEFAULT.jitter(1.0);
});
hand_written!(NanRefresh {
    const PREFIX: &'static str = "refresh";
    const LOAD: LoadPolicy = LoadPolicy::DEFAULT.early_refresh(f64::NAN);
});
hand_written!(SoftAlone {
    const PREFIX: &'static str = "soft";
    const LOAD: LoadPolicy = LoadPolicy::DEFAULT.soft_timeout(Duration::from_millis(5));
});
hand_written!(EmptyLocal {
    const PREFIX: &'static str = "local0";
    const LOCAL: Option<LocalSettings> = Some(LocalSettings::new(0, Duration::from_secs(1)));
});
hand_written!(EndlessLocal {
    const PREFIX: &'static str = "localyear";
    const LOCAL: Option<LocalSettings> =
        Some(LocalSettings::new(10, Duration::from_secs(400 * 24 * 3600)));
});
hand_written!(SmallLocal {
    const PREFIX: &'static str = "shared";
    const LOCAL: Option<LocalSettings> = Some(LocalSettings::new(10, Duration::from_secs(1)));
});
hand_written!(LargeLocal {
    const PREFIX: &'static str = "shared";
    const LOCAL: Option<LocalSettings> = Some(LocalSettings::new(99, Duration::from_secs(1)));
});
hand_written!(Fine {
    const PREFIX: &'static str = "fine";
    const TTL: Option<Duration> = Some(Duration::from_secs(60));
    const CODEC: Codec = Codec::Json;
    const LOAD: LoadPolicy = LoadPolicy::DEFAULT.jitter(0.2);
    const LOCAL: Option<LocalSettings> = Some(LocalSettings::new(10, Duration::from_secs(1)));
    const COMPRESS: Option<CompressSettings> =
        Some(CompressSettings::new(Compression::Lz4, 64));
});

/// The error of `typed::<T>()`, as text.
fn refused<T: Cacheable + Serialize + for<'de> Deserialize<'de>>(cache: &Cache) -> String {
    match cache.typed::<T>() {
        Ok(_) => panic!("the settings of `{}` were accepted", T::PREFIX),
        Err(err) => err.to_string(),
    }
}

/// The error the builder gives for the same setting, as text.
fn builder_refuses(built: cache_core::Result<cache_core::TypedCache<u64, u64>>) -> String {
    match built {
        Ok(_) => panic!("the builder accepted it"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn each_constant_gets_the_builders_check_and_error() {
    let cache = Cache::memory();
    let ks = |prefix: &str| cache.keyspace(prefix);
    let second = Duration::from_secs(1);
    let cases = [
        (refused::<BadPrefix>(&cache), ks("a:b").typed()),
        (refused::<EmptyPrefix>(&cache), ks("").typed()),
        (refused::<VersionZero>(&cache), ks("v0").version(0).typed()),
        (
            refused::<ZeroTtl>(&cache),
            ks("ttl0").ttl(Duration::ZERO).typed(),
        ),
        (
            refused::<WholeJitter>(&cache),
            ks("jitter")
                .load_policy(LoadPolicy::DEFAULT.jitter(1.0))
                .typed(),
        ),
        (
            refused::<NanRefresh>(&cache),
            ks("refresh")
                .load_policy(LoadPolicy::DEFAULT.early_refresh(f64::NAN))
                .typed(),
        ),
        (
            refused::<SoftAlone>(&cache),
            ks("soft")
                .load_policy(LoadPolicy::DEFAULT.soft_timeout(second))
                .typed(),
        ),
        (
            refused::<EmptyLocal>(&cache),
            ks("local0").local(0, second).typed(),
        ),
        (
            refused::<EndlessLocal>(&cache),
            ks("localyear").local(10, 400 * 24 * 3600 * second).typed(),
        ),
    ];
    for (at, (from_trait, from_builder)) in cases.into_iter().enumerate() {
        let from_builder = builder_refuses(from_builder);
        assert_eq!(from_trait, from_builder, "case {at}");
    }
}

#[test]
fn a_conflicting_local_tier_is_refused_as_by_the_builder() {
    let cache = Cache::memory();
    assert!(cache.typed::<SmallLocal>().is_ok());
    let from_trait = refused::<LargeLocal>(&cache);
    let builder = cache.keyspace("shared").local(99, Duration::from_secs(1));
    assert_eq!(from_trait, builder_refuses(builder.typed()));
    assert!(from_trait.contains("`shared`"), "{from_trait}");
}

#[tokio::test]
async fn valid_constants_give_a_working_keyspace() {
    let cache = Cache::memory();
    let fine = cache.typed::<Fine>().unwrap();
    fine.set(&1, &Fine(7)).await.unwrap();
    assert_eq!(fine.get(&1).await.unwrap().map(|Fine(n)| n), Some(7));
    let ttl = fine.ttl(&1).await.unwrap();
    assert!(
        matches!(ttl, cache_core::Ttl::Expires(left) if left <= Duration::from_secs(60)),
        "{ttl:?}"
    );
    // The local tier is the one the constants named.
    assert!(
        cache
            .keyspace("fine")
            .local(10, Duration::from_secs(1))
            .typed::<u64, Fine>()
            .is_ok()
    );
}
