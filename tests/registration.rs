//! Link-time registration and its validation at `build()`.

use eventbus_core::{handler, BuildProblem, Event, EventBus, State};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Event)]
pub struct Deposit {
    cents: u64,
}

#[derive(Default)]
pub struct Ledger {
    total: AtomicU64,
}

pub struct Auditor {
    name: &'static str,
}

pub mod billing {
    use super::*;

    #[handler]
    fn book(e: &Deposit, ledger: State<Ledger>) {
        ledger.total.fetch_add(e.cents, Ordering::SeqCst);
    }

    pub mod audit {
        use super::*;

        #[handler]
        async fn check(
            e: &Deposit,
            auditor: State<Auditor>,
            ledger: State<Ledger>,
        ) -> Result<(), String> {
            if auditor.name.is_empty() {
                return Err("no auditor".into());
            }
            ledger.total.fetch_add(e.cents * 1000, Ordering::SeqCst);
            Ok(())
        }
    }
}

pub mod billing_v2 {
    use super::*;

    #[handler]
    fn should_never_be_selected_by_the_billing_prefix(_: &Deposit) {}
}

#[tokio::test]
async fn state_is_injected_into_every_handler_that_asks() {
    let ledger = Arc::new(Ledger::default());
    let bus = EventBus::builder()
        .with_registered_handlers_from("registration::billing")
        .state_arc(ledger.clone())
        .state(Auditor { name: "ann" })
        .build()
        .unwrap();
    let report = bus.publish(Deposit { cents: 3 }).await;
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.handled(), 2);
    assert_eq!(ledger.total.load(Ordering::SeqCst), 3003);
}

#[test]
fn a_prefix_takes_its_module_and_submodules_only() {
    let bus = EventBus::builder()
        .with_registered_handlers_from("registration::billing::audit")
        .state(Ledger::default())
        .state(Auditor { name: "ann" })
        .build()
        .unwrap();
    let names: Vec<_> = bus
        .handlers_for::<Deposit>()
        .iter()
        .map(|h| h.name().to_owned())
        .collect();
    assert_eq!(names, ["registration::billing::audit::check"]);

    let bus = EventBus::builder()
        .with_registered_handlers_from("registration::billing")
        .with_registered_handlers_from("registration::billing_v2::")
        .state(Ledger::default())
        .state(Auditor { name: "ann" })
        .build()
        .unwrap();
    assert_eq!(bus.handlers_for::<Deposit>().len(), 3);

    let everything = EventBus::builder()
        .with_registered_handlers()
        .state(Ledger::default())
        .state(Auditor { name: "ann" })
        .build()
        .unwrap();
    // Also `at_least_ten`, declared inside a test fn below: its module path is `registration`.
    assert_eq!(everything.handlers_for::<Deposit>().len(), 4);

    assert_eq!(EventBus::new().handlers_for::<Deposit>().len(), 0);
}

#[test]
fn missing_state_names_every_handler_and_type() {
    let error = EventBus::builder()
        .with_registered_handlers_from("registration::billing")
        .build()
        .unwrap_err();
    assert_eq!(
        error.problems(),
        [
            BuildProblem::MissingState {
                handler: "registration::billing::audit::check".into(),
                state: "registration::Auditor".into(),
            },
            BuildProblem::MissingState {
                handler: "registration::billing::audit::check".into(),
                state: "registration::Ledger".into(),
            },
            BuildProblem::MissingState {
                handler: "registration::billing::book".into(),
                state: "registration::Ledger".into(),
            },
        ]
    );
    let message = error.to_string();
    assert!(
        message.starts_with("cannot build the event bus:"),
        "{message}"
    );
    assert!(
        message.contains("handler `registration::billing::book` takes `State<registration::Ledger>`, but no `registration::Ledger` was given"),
        "{message}"
    );
}

#[test]
fn the_same_state_type_given_twice_is_an_error() {
    let error = EventBus::builder()
        .state(Ledger::default())
        .state(Ledger::default())
        .build()
        .unwrap_err();
    assert_eq!(
        error.problems(),
        [BuildProblem::DuplicateState {
            state: "registration::Ledger".into()
        }]
    );
}

#[tokio::test]
async fn a_handler_fn_stays_callable_directly() {
    // `#[handler]` leaves the fn as written: unit tests can call it without a bus.
    #[handler]
    fn at_least_ten(e: &Deposit) -> Result<(), String> {
        if e.cents >= 10 {
            Ok(())
        } else {
            Err(format!("too small: {}", e.cents))
        }
    }
    assert_eq!(
        at_least_ten(&Deposit { cents: 3 }),
        Err("too small: 3".to_owned())
    );
}
