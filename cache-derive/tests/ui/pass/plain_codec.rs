// codec = "plain" on newtypes over a string, bytes and an integer.
use cache_core::{Cacheable, Codec};

#[derive(serde::Serialize, serde::Deserialize, Cacheable)]
#[cache(prefix = "token", codec = "plain", key_type = "String")]
struct Token(String);

#[derive(serde::Serialize, serde::Deserialize, Cacheable)]
#[cache(codec = "plain", key_type = "u64", local(capacity = 10, ttl = "1s"))]
struct Blob(Vec<u8>);

#[derive(serde::Serialize, serde::Deserialize, Cacheable)]
#[cache(codec = "plain", key_type = "String", ttl = "1m")]
struct Calls(i64);

fn main() {
    assert_eq!(Token::CODEC, Codec::Plain);
    assert_eq!(Blob::CODEC, Codec::Plain);
    assert_eq!(Calls::CODEC, Codec::Plain);
}
