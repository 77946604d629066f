//! An application that depends on a handler crate in `Cargo.toml` only: the linker drops the
//! crate, and building a bus that asks for registered handlers says so and how to fix it.
//! (Its twin, `link_named`, adds `eventbus_core::link!`.)

use eventbus_core::{BuildProblem, EventBus};

#[test]
fn asking_for_registered_handlers_when_none_is_linked_is_an_error_naming_the_fix() {
    let error = EventBus::builder()
        .with_registered_handlers()
        .build()
        .unwrap_err();
    assert_eq!(error.problems(), [BuildProblem::NoRegisteredHandlers]);
    let message = error.to_string();
    assert!(message.contains("dropped by the linker"), "{message}");
    assert!(
        message.contains("eventbus_core::link!(orders_domain);"),
        "{message}"
    );

    let error = EventBus::builder()
        .with_registered_handlers_from("link_fixture_handlers")
        .build()
        .unwrap_err();
    assert_eq!(error.problems(), [BuildProblem::NoRegisteredHandlers]);
}
