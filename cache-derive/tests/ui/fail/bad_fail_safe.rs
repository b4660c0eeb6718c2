// The fail-safe attributes: each needs `fail_safe`, the soft timeout needs a
// longer hard one, and every duration is checked like `ttl`.
#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(soft_timeout = "100ms", fail_safe_throttle = "5s")]
struct A(u64);

#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(fail_safe = "1h", soft_timeout = "100ms")]
struct D(u64);

#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(fail_safe = "1h", soft_timeout = "3s", hard_timeout = "2s")]
struct B(u64);

#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(fail_safe = "forever")]
struct C(u64);
fn main() {}
