//! Two registered handlers of one name fail `build()`, naming both definitions, unless sharing
//! is allowed. (In its own test binary: the clash would fail every bus that takes them all.)

use eventbus_core::{handler, BuildProblem, Event, EventBus};

#[derive(Event)]
struct Paid;

mod ledger {
    use super::*;

    #[handler(name = "billing.book")]
    fn book(_: &Paid) {}
}

mod audit {
    use super::*;

    #[handler(name = "billing.book")]
    fn book(_: &Paid) {}
}

#[test]
fn two_handlers_of_one_name_are_a_build_error_naming_both_definitions() {
    let error = EventBus::builder()
        .with_registered_handlers()
        .build()
        .unwrap_err();
    let [BuildProblem::DuplicateHandlerName {
        name,
        first,
        second,
    }] = error.problems()
    else {
        panic!("{error}");
    };
    assert_eq!(name, "billing.book");
    let mut places = [first.as_str(), second.as_str()];
    places.sort();
    assert_eq!(
        places,
        ["tests/handler_names.rs:13", "tests/handler_names.rs:20"]
    );
    assert!(error
        .to_string()
        .contains("or allow it with `.allow_shared_handler_names()`"));
}

#[tokio::test]
async fn sharing_a_name_can_be_allowed() {
    let bus = EventBus::builder()
        .with_registered_handlers()
        .allow_shared_handler_names()
        .build()
        .unwrap();
    let report = bus.publish(Paid).await;
    assert_eq!(report.handled(), 2);
}
