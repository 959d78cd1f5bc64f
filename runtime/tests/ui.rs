//! Compile-time errors of `resnext!` (trybuild). Bless new `.stderr` files with
//! `TRYBUILD=overwrite` (then review them).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
