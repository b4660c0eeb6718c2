use cache_core::{Cacheable, Codec, KeyedCacheable};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Cacheable)]
struct Entry<K, T> {
    #[cache(key)]
    id: K,
    value: T,
}

#[derive(Serialize, Deserialize, Cacheable)]
#[cache(ttl = 30, key_type = "u64", codec = "bincode")]
enum Presence {
    Online { device: String },
    Away,
}

#[derive(Serialize, Deserialize, Cacheable)]
struct HTTPResponse(#[cache(key)] String, u16);

fn main() {
    let entry = Entry { id: 7u32, value: "x" };
    assert_eq!(*entry.cache_key(), 7);
    assert_eq!(<Entry<u32, String> as Cacheable>::PREFIX, "entry");
    assert_eq!(Presence::PREFIX, "presence");
    assert_eq!(Presence::CODEC, Codec::Bincode);
    let _: <Presence as Cacheable>::Key = 5u64;
    let _ = (Presence::Away, Presence::Online { device: String::new() });
    assert_eq!(HTTPResponse::PREFIX, "http_response");
    assert_eq!(HTTPResponse("/".into(), 200).cache_key(), "/");
    let _ = entry.value;
}
