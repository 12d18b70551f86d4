//! Compile-time behaviour of the macros: each `ui-tests/fail/<diagnostic>.rs` must fail with
//! exactly its `.stderr` (refresh those only on the toolchain pinned in rust-toolchain.toml, with
//! `TRYBUILD=overwrite`). The cases that must compile are ordinary modules of this test crate
//! (`tests/ui_pass/`), so trybuild only type-checks (`cargo check`) and never builds the
//! dependencies a second time.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui-tests/fail/*.rs");
}
