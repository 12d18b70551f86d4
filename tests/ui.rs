//! Compile-time behaviour of the macros: `ui-tests/pass/*.rs` must compile, and each
//! `ui-tests/fail/<diagnostic>.rs` must fail with exactly its `.stderr` (refresh those only on
//! the toolchain pinned in rust-toolchain.toml, with `TRYBUILD=overwrite`).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui-tests/pass/*.rs");
    t.compile_fail("ui-tests/fail/*.rs");
}
