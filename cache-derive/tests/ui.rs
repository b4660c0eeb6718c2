//! Compile tests for the derive: what must compile, and the exact diagnostics
//! for every misuse (`.stderr` files, written with the pinned toolchain).
//! Regenerate with `TRYBUILD=overwrite cargo test -p cache-derive --test ui`.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
