#[derive(cache_core::Cacheable)]
union A {
    a: u32,
    b: f32,
}
fn main() {}
