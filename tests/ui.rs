//! Compile-fail tests: every misuse of the macros is a compile error with a precise span and a
//! message that says how to fix it. Run with `TRYBUILD=overwrite` to regenerate `.stderr` files.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/event/*.rs");
    t.compile_fail("ui/handler/*.rs");
    t.compile_fail("ui/saga/*.rs");
    t.compile_fail("ui/upcast/*.rs");
    t.pass("ui/pass/*.rs");
}
