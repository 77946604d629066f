//! Hierarchy dispatch: a published event reaches the handlers of its type and of every
//! ancestor, each handed its own part; the concrete event stays reachable through `Context`.

use eventbus_core::{Context, Event, EventBus, EventExt};
use std::sync::{Arc, Mutex};

#[derive(Event, Debug)]
struct Root {
    at_ms: u64,
}

#[derive(Event, Debug)]
#[event(extends = Root)]
struct Account {
    #[event(base)]
    base: Root,
    account: u32,
}

#[derive(Event, Debug)]
#[event(extends = Account, version = 2)]
struct Payment {
    #[event(base)]
    base: Account,
    cents: u64,
}

#[derive(Event, Debug)]
#[event(extends = Payment, name = "payments.refunded", version = 3)]
struct Refund {
    #[event(base)]
    base: Payment,
    reason: String,
}

#[derive(Event, Debug)]
#[event(extends = Refund)]
struct PartialRefund(#[event(base)] Refund, u64);

fn partial_refund() -> PartialRefund {
    PartialRefund(
        Refund {
            base: Payment {
                base: Account {
                    base: Root { at_ms: 11 },
                    account: 22,
                },
                cents: 33,
            },
            reason: "damaged".into(),
        },
        44,
    )
}

type Log = Arc<Mutex<Vec<String>>>;

#[test]
fn lineage_lists_ancestors_nearest_first_with_names_and_versions() {
    let lineage: Vec<_> = PartialRefund::TYPE
        .lineage()
        .map(|t| (t.name(), t.version()))
        .collect();
    assert_eq!(
        lineage,
        [
            ("hierarchy::PartialRefund", 1),
            ("payments.refunded", 3),
            ("hierarchy::Payment", 2),
            ("hierarchy::Account", 1),
            ("hierarchy::Root", 1),
        ]
    );
    assert_eq!(Refund::TYPE.rust_name(), "hierarchy::Refund");
    assert_eq!(Root::TYPE.parent(), None);
}

#[test]
fn upcasts_reach_every_level_and_nothing_else() {
    let event = partial_refund();
    assert_eq!(event.upcast::<PartialRefund>().map(|e| e.1), Some(44));
    assert_eq!(
        event.upcast::<Refund>().map(|e| e.reason.as_str()),
        Some("damaged")
    );
    assert_eq!(event.upcast::<Payment>().map(|e| e.cents), Some(33));
    assert_eq!(event.upcast::<Account>().map(|e| e.account), Some(22));
    assert_eq!(event.upcast::<Root>().map(|e| e.at_ms), Some(11));
    assert!(PartialRefund::is_a::<Root>());
    assert!(!Root::is_a::<Account>());
    let payment = &event.0.base;
    assert!(payment.upcast::<Refund>().is_none());
}

#[tokio::test]
async fn five_levels_each_handler_gets_its_own_part() {
    let bus = EventBus::new();
    let log: Log = Arc::default();
    let l = log.clone();
    let _a = bus.subscribe(move |e: &Root| l.lock().unwrap().push(format!("root {}", e.at_ms)));
    let l = log.clone();
    let _b =
        bus.subscribe(move |e: &Account| l.lock().unwrap().push(format!("account {}", e.account)));
    let l = log.clone();
    let _c =
        bus.subscribe(move |e: &Payment| l.lock().unwrap().push(format!("payment {}", e.cents)));
    let l = log.clone();
    let _d =
        bus.subscribe(move |e: &Refund| l.lock().unwrap().push(format!("refund {}", e.reason)));
    let l = log.clone();
    let _e =
        bus.subscribe(move |e: &PartialRefund| l.lock().unwrap().push(format!("partial {}", e.1)));

    let report = bus.publish(partial_refund()).await;
    assert!(report.is_ok());
    assert_eq!(report.handled(), 5);
    // Same priority everywhere: the more derived type runs first.
    assert_eq!(
        *log.lock().unwrap(),
        [
            "partial 44",
            "refund damaged",
            "payment 33",
            "account 22",
            "root 11"
        ]
    );
}

#[tokio::test]
async fn publishing_a_parent_does_not_reach_handlers_of_derived_types() {
    let bus = EventBus::new();
    let log: Log = Arc::default();
    let l = log.clone();
    let _derived = bus.subscribe(move |_: &Payment| l.lock().unwrap().push("payment".into()));
    let l = log.clone();
    let _base = bus.subscribe(move |_: &Account| l.lock().unwrap().push("account".into()));

    let report = bus
        .publish(Account {
            base: Root { at_ms: 1 },
            account: 2,
        })
        .await;
    assert_eq!(report.handled(), 1);
    assert_eq!(*log.lock().unwrap(), ["account"]);
}

#[tokio::test]
async fn a_base_handler_reaches_the_concrete_event_through_context() {
    let bus = EventBus::new();
    let log: Log = Arc::default();
    let l = log.clone();
    let _sub = bus.subscribe(move |_: &Root, ctx: Context| {
        let mut log = l.lock().unwrap();
        log.push(ctx.event_name().to_owned());
        log.push(format!("is payment: {}", ctx.is::<Payment>()));
        if let Some(refund) = ctx.downcast_ref::<Refund>() {
            log.push(format!("refund reason {}", refund.reason));
        }
        if let Some(partial) = ctx.downcast_ref::<PartialRefund>() {
            log.push(format!("partial {}", partial.1));
        }
    });

    assert!(bus.publish(partial_refund()).await.is_ok());
    assert!(bus.publish(Root { at_ms: 5 }).await.is_ok());
    assert_eq!(
        *log.lock().unwrap(),
        [
            "hierarchy::PartialRefund",
            "is payment: true",
            "refund reason damaged",
            "partial 44",
            "hierarchy::Root",
            "is payment: false",
        ]
    );
}

#[tokio::test]
async fn an_event_with_no_handler_is_reported_as_handled_by_none() {
    let bus = EventBus::new();
    let report = bus.publish(Root { at_ms: 0 }).await;
    assert!(report.is_ok());
    assert_eq!(report.handled(), 0);
    assert_eq!(report.event_type().name(), "hierarchy::Root");
}
