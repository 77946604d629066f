//! An application that names its handler crate with `link!`, and nothing else of it: the
//! crate's handlers are linked and found. (Its twin, `link_missing`, leaves the line out.)

eventbus_core::link!(link_fixture_handlers);

use eventbus_core::EventBus;

#[test]
fn a_crate_named_with_link_has_its_handlers_found() {
    // By package name (hyphens) and by crate name: both select the crate's modules.
    for prefix in ["link-fixture-handlers", "link_fixture_handlers::billing"] {
        let bus = EventBus::builder()
            .with_registered_handlers_from(prefix)
            .build()
            .unwrap_or_else(|e| panic!("{prefix}: {e}"));
        drop(bus);
    }
    EventBus::builder()
        .with_handler("fixture.billing.book")
        .build()
        .unwrap();
}

#[test]
fn a_handler_asked_for_by_its_fn_path_after_a_rename_says_its_name() {
    let error = EventBus::builder()
        .with_handler("link_fixture_handlers::billing::book")
        .build()
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot build the event bus:\n  - no `#[handler]` is named \
         `link_fixture_handlers::billing::book`: that fn is registered under its \
         `name = \"fixture.billing.book\"`; ask for `fixture.billing.book`"
    );
}

#[test]
fn a_module_prefix_that_matches_no_handler_lists_the_ones_that_do() {
    let error = EventBus::builder()
        .with_registered_handlers_from("link_fixture_handler")
        .build()
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot build the event bus:\n  - no `#[handler]` lies in module `link_fixture_handler`: \
         give a module path (crate names use `_`, not `-`); the modules with handlers are: \
         `link_fixture_handlers::billing`"
    );
}
