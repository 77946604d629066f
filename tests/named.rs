//! Subscriptions by event name (`EventBus::on` / `off`): patterns, versions, hierarchy, one
//! subscription per listener and pattern, isolation, and events received from the wire.

#[path = "support/redis.rs"]
mod support;

use eventbus_core::wire::{Listener, NamePattern, NamedEvent, PatternError};
use eventbus_core::{Event, EventBus};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{durable_service, unique, wait_until};

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(name = "orders.event", distributed)]
struct OrderEvent {
    order_id: String,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(extends = OrderEvent, name = "orders.placed", version = 2, distributed)]
struct OrderPlaced {
    #[event(base)]
    base: OrderEvent,
    cents: u64,
}

/// Derived from a distributed type, but not distributed itself.
#[derive(Event, Clone, Debug)]
#[event(extends = OrderEvent, name = "orders.internal.checked")]
struct OrderChecked {
    #[event(base)]
    base: OrderEvent,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(name = "billing.invoiced", distributed)]
struct Invoiced {
    cents: u64,
}

fn placed(id: &str) -> OrderPlaced {
    OrderPlaced {
        base: OrderEvent {
            order_id: id.into(),
        },
        cents: 250,
    }
}

type Log = Arc<Mutex<Vec<String>>>;

fn recorder() -> (Listener, Log) {
    let log = Log::default();
    let lines = Arc::clone(&log);
    let listener: Listener = Arc::new(move |e: &NamedEvent| {
        let origin = e.meta().origin().unwrap_or("here").to_owned();
        lines.lock().unwrap().push(format!(
            "{} v{} {} from {origin}",
            e.name(),
            e.version(),
            e.data()
        ));
    });
    (listener, log)
}

#[test]
fn patterns_match_by_segment_and_version() {
    let matches = |pattern: &str, ty: &'static eventbus_core::EventType| {
        pattern.parse::<NamePattern>().unwrap().matches(ty)
    };
    assert!(matches("orders.placed", OrderPlaced::TYPE));
    assert!(matches("orders.*", OrderPlaced::TYPE));
    assert!(matches("*.placed", OrderPlaced::TYPE));
    assert!(matches("orders.**", OrderChecked::TYPE));
    assert!(!matches("orders.*", OrderChecked::TYPE)); // three segments
    assert!(matches("orders.placed@2", OrderPlaced::TYPE));
    assert!(!matches("orders.placed@1", OrderPlaced::TYPE));
    assert!(!matches("billing.*", OrderPlaced::TYPE));
    for (bad, why) in [
        ("", "it is empty"),
        ("orders..placed", "a segment between dots is empty"),
        (
            "orders.**.x",
            "`**` stands for the rest of the name: put it last",
        ),
        (
            "orders.pla*",
            "`*` stands for a whole segment, as in `orders.*`",
        ),
        (
            "orders.placed@v2",
            "`@` is followed by a version, a number from 1",
        ),
    ] {
        let error = bad.parse::<NamePattern>().unwrap_err();
        assert_eq!(
            error,
            PatternError::Invalid {
                pattern: bad.into(),
                why
            }
        );
    }
}

#[tokio::test]
async fn a_listener_gets_matching_events_as_json_once_and_off_stops_it() {
    let bus = EventBus::new();
    let (listener, log) = recorder();
    bus.on("orders.*", &listener).unwrap();
    bus.on("orders.*", &listener).unwrap(); // the same listener: still one subscription
    assert_eq!(bus.publish(placed("A-1")).await.handled(), 1);
    assert_eq!(
        bus.publish(Invoiced { cents: 5 }).await.handled(),
        0,
        "billing.invoiced does not match orders.*"
    );
    // A type derived from a matching one that has no JSON form of its own: sent as the
    // matching type.
    let checked = OrderChecked {
        base: OrderEvent {
            order_id: "A-2".into(),
        },
    };
    assert_eq!(bus.publish(checked).await.handled(), 1);
    assert!(bus.off("orders.*", &listener));
    assert!(!bus.off("orders.*", &listener), "already gone");
    assert_eq!(bus.publish(placed("A-3")).await.handled(), 0);
    assert_eq!(
        *log.lock().unwrap(),
        [
            r#"orders.placed v2 {"base":{"order_id":"A-1"},"cents":250} from here"#,
            r#"orders.event v1 {"order_id":"A-2"} from here"#,
        ]
    );
}

#[tokio::test]
async fn two_listeners_or_two_patterns_are_separate_subscriptions() {
    let bus = EventBus::new();
    let (first, first_log) = recorder();
    let (second, second_log) = recorder();
    bus.on("orders.placed", &first).unwrap();
    bus.on("orders.placed@2", &first).unwrap(); // another pattern: another subscription
    bus.on("orders.placed", &second).unwrap();
    assert_eq!(bus.publish(placed("B-1")).await.handled(), 3);
    assert_eq!(first_log.lock().unwrap().len(), 2);
    assert_eq!(second_log.lock().unwrap().len(), 1);
    // Unsubscribing one pattern leaves the other.
    assert!(bus.off("orders.placed", &first));
    assert_eq!(bus.publish(placed("B-2")).await.handled(), 2);
}

#[tokio::test]
async fn a_panicking_listener_is_isolated_like_any_handler() {
    let bus = EventBus::new();
    let boom: Listener = Arc::new(|_: &NamedEvent| panic!("listener broke"));
    let (listener, log) = recorder();
    bus.on("orders.placed", &boom).unwrap();
    bus.on("orders.**", &listener).unwrap();
    let report = bus.publish(placed("C-1")).await;
    assert_eq!(report.handled(), 2);
    assert_eq!(report.failures().len(), 1);
    assert!(report.failures()[0].to_string().contains("listener broke"));
    assert_eq!(log.lock().unwrap().len(), 1);
}

#[test]
fn a_pattern_no_distributed_type_matches_is_an_error() {
    let bus = EventBus::new();
    let (listener, _) = recorder();
    let error = bus.on("shipping.*", &listener).unwrap_err();
    assert_eq!(
        error,
        PatternError::NoMatch {
            pattern: "shipping.*".into()
        }
    );
    // orders.internal.checked exists, but has no JSON form.
    assert!(bus.on("orders.internal.*", &listener).is_err());
    assert!(bus.on("orders.placed@7", &listener).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_from_the_wire_reach_name_listeners() {
    let stream = unique("named");
    let (auditor, auditor_bridge) = durable_service::<OrderEvent>("auditor", &stream).await;
    let (listener, log) = recorder();
    auditor.on("orders.**", &listener).unwrap();
    let (orders, orders_bridge) = durable_service::<OrderEvent>("orders", &stream).await;
    assert!(orders.publish(placed("W-1")).await.is_ok());
    wait_until("the auditor hears it", Duration::from_secs(20), || async {
        !log.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(
        *log.lock().unwrap(),
        [r#"orders.placed v2 {"base":{"order_id":"W-1"},"cents":250} from orders"#]
    );
    assert!(auditor_bridge.shutdown().await.is_complete());
    assert!(orders_bridge.shutdown().await.is_complete());
}

#[tokio::test]
async fn a_pattern_over_unrelated_types_subscribes_to_each() {
    let bus = EventBus::new();
    let (listener, log) = recorder();
    bus.on("**", &listener).unwrap();
    assert_eq!(bus.publish(placed("E-1")).await.handled(), 1);
    assert_eq!(bus.publish(Invoiced { cents: 9 }).await.handled(), 1);
    let names: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .map(|l| l.split(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["orders.placed", "billing.invoiced"]);
}
