//! Two event types claiming one (name, version) fail `build()`, naming both.
//! (In its own test binary: the clash would fail every bus that takes all registrations.)

use eventbus_core::{BuildProblem, Event, EventBus, EventType};

pub mod shop {
    use super::*;

    #[derive(Event)]
    #[event(name = "order.created", version = 2)]
    pub struct OrderCreated;

    pub mod legacy {
        use super::*;

        #[derive(Event)]
        #[event(name = "order.created", version = 2)]
        pub struct OrderCreated;

        #[derive(Event)]
        #[event(name = "order.created", version = 1)]
        pub struct OrderCreatedV1;

        #[eventbus_core::handler]
        fn on_created(_: &OrderCreatedV1) {}
    }
}

/// Two types of one name, each declared in its own function body of this module.
fn first_local() -> &'static EventType {
    #[derive(Event)]
    struct Local;
    Local::TYPE
}

fn second_local() -> &'static EventType {
    #[derive(Event)]
    struct Local;
    Local::TYPE
}

#[test]
fn types_of_one_name_in_different_function_bodies_get_different_default_names() {
    let (first, second) = (first_local(), second_local());
    assert_eq!(first.name(), "name_clash::first_local::Local");
    assert_eq!(second.name(), "name_clash::second_local::Local");
    assert_eq!(first.rust_name(), first.name());
    // Both are registered, and validated with everything else, without a clash: the only
    // problem of the whole binary is the one below.
    let error = EventBus::builder()
        .with_registered_handlers()
        .build()
        .unwrap_err();
    assert_eq!(error.problems().len(), 1, "{error}");
}

#[test]
fn a_shared_name_and_version_names_both_types() {
    let error = EventBus::builder()
        .with_registered_handlers()
        .build()
        .unwrap_err();
    assert_eq!(
        error.problems(),
        [BuildProblem::EventNameClash {
            name: "order.created".into(),
            version: 2,
            first: "name_clash::shop::OrderCreated".into(),
            second: "name_clash::shop::legacy::OrderCreated".into(),
        }]
    );
    assert!(error.to_string().contains(
        "event types `name_clash::shop::OrderCreated` and `name_clash::shop::legacy::OrderCreated` both claim name `order.created` version 2"
    ));
}

#[test]
fn a_selection_without_the_clash_builds() {
    assert!(EventBus::builder()
        .with_registered_handlers_from("name_clash::shop::legacy")
        .build()
        .is_ok());
}
