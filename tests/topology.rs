//! `EventBus::topology()`: what a known bus holds, in all three renderings (JSON, Markdown,
//! Mermaid); sagas and bridge routes added by the layers above, while they run; and the
//! publish/handle check.

#[path = "support/redis.rs"]
mod support;

use eventbus_core::bridge::Bridge;
use eventbus_core::middleware::{self, EnvelopeMut, Flow, SyncMiddleware};
use eventbus_core::redis::RedisTransport;
use eventbus_core::saga::{SagaContext, Sagas};
use eventbus_core::topology::TopologyError;
use eventbus_core::{handler, saga, Event, EventBus, SubscribeOptions};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(name = "shop.event", distributed)]
struct ShopEvent {
    order_id: String,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(extends = ShopEvent, name = "shop.order_placed", distributed)]
struct OrderPlaced {
    #[event(base)]
    base: ShopEvent,
}

#[derive(Event, Clone, Debug)]
#[event(name = "shop.paid", version = 1)]
struct PaidV1 {
    euros: u64,
}

#[derive(Event, Clone, Debug)]
#[event(name = "shop.paid", version = 2)]
#[allow(dead_code)] // read by no handler: the tests look at the topology only
struct Paid {
    cents: u64,
}

/// Registered at link time; declares what it publishes.
#[handler(priority = 10, publishes = [Paid])]
fn reserve(_: &OrderPlaced) {}

struct Tenant;

impl SyncMiddleware for Tenant {
    fn before(&self, _: &mut EnvelopeMut<'_>) -> Flow {
        Flow::Continue
    }
}

/// The line `reserve` is defined on (a `#[handler]` is located at its fn's name).
fn reserve_line() -> usize {
    let source = include_str!("topology.rs");
    1 + source
        .lines()
        .position(|l| l.starts_with("fn reserve("))
        .unwrap()
}

/// The bus every rendering is checked against, and the line its subscriptions are made on.
fn known_bus() -> (EventBus, u32) {
    let bus = EventBus::builder()
        .with_handler("topology::reserve")
        .middleware(middleware::sync(Tenant))
        .upcaster(|old: &PaidV1| Paid {
            cents: old.euros * 100,
        })
        .publisher::<OrderPlaced>("checkout API")
        .build()
        .unwrap();
    let audit = SubscribeOptions::new()
        .name("audit")
        .timeout(Duration::from_millis(500));
    let receipt = SubscribeOptions::new()
        .name("receipt")
        .retry(2, Duration::from_millis(10));
    // Subscribed on this line and the next: the topology names them.
    let line = line!() + 1;
    let audit = bus.subscribe_with(audit, |_: &ShopEvent| async {});
    let receipt = bus.subscribe_with(receipt, |_: &Paid| {});
    audit.forever();
    receipt.forever();
    (bus, line)
}

#[test]
fn the_topology_of_a_known_bus_as_markdown() {
    let (bus, line) = known_bus();
    let file = file!();
    let reserve_line = reserve_line();
    let expected = format!(
        "## Events

| event | version | extends | Rust type |
|---|---|---|---|
| `shop.event` | 1 | – | `topology::ShopEvent` |
| `shop.order_placed` | 1 | `shop.event` | `topology::OrderPlaced` |
| `shop.paid` | 1 | – | `topology::PaidV1` |
| `shop.paid` | 2 | – | `topology::Paid` |

## Handlers

| handler | event | priority | kind | policy | publishes | source |
|---|---|---|---|---|---|---|
| `audit` | `shop.event` v1 | 0 | async subscription | timeout 500 ms | – | {file}:{line} |
| `topology::reserve` | `shop.order_placed` v1 | 10 | sync fn | – | `shop.paid` | {file}:{reserve_line} |
| `receipt` | `shop.paid` v2 | 0 | sync subscription | 2 retries | – | {file}:{} |

## Middleware (in order)

| middleware | kind | applies to |
|---|---|---|
| `Tenant` | sync | every event |

## Upcasters

| upcaster | event | from | to | source |
|---|---|---|---|---|
| `EventBusBuilder::upcaster::<topology::PaidV1, topology::Paid>` | `shop.paid` | v1 | v2 | – |

## Publishers

| event | published by |
|---|---|
| `shop.order_placed` | checkout API |

",
        line + 1
    );
    assert_eq!(bus.topology().to_markdown(), expected);
}

#[test]
fn the_topology_of_a_known_bus_as_mermaid() {
    let (bus, _) = known_bus();
    let expected = "flowchart LR
    e0[\"shop.event v1\"]
    e1[\"shop.order_placed v1\"]
    e2[\"shop.paid v1\"]
    e3[\"shop.paid v2\"]
    e1 -. is a .-> e0
    e2 == upcast ==> e3
    h0([\"audit<br/>async, priority 0\"])
    e0 --> h0
    h1([\"topology::reserve<br/>sync, priority 10\"])
    e1 --> h1
    h1 -. publishes .-> e3
    h2([\"receipt<br/>sync, priority 0\"])
    e3 --> h2
    p0>\"checkout API\"] --> e1
";
    assert_eq!(bus.topology().to_mermaid(), expected);
}

#[test]
fn the_topology_of_a_known_bus_as_json() {
    let (bus, line) = known_bus();
    let json: serde_json::Value = serde_json::from_str(&bus.topology().to_json()).unwrap();
    let file = file!();
    let expected = serde_json::json!({
        "events": [
            {"name": "shop.event", "version": 1, "rust_name": "topology::ShopEvent", "ancestors": []},
            {"name": "shop.order_placed", "version": 1, "rust_name": "topology::OrderPlaced", "ancestors": ["shop.event"]},
            {"name": "shop.paid", "version": 1, "rust_name": "topology::PaidV1", "ancestors": []},
            {"name": "shop.paid", "version": 2, "rust_name": "topology::Paid", "ancestors": []},
        ],
        "handlers": [
            {"name": "audit", "event": "shop.event", "event_version": 1, "priority": 0,
             "is_async": true, "registered": false, "timeout_ms": 500, "retries": 0,
             "on_error": false, "location": format!("{file}:{line}"), "publishes": []},
            {"name": "topology::reserve", "event": "shop.order_placed", "event_version": 1,
             "priority": 10, "is_async": false, "registered": true, "timeout_ms": null,
             "retries": 0, "on_error": false, "location": format!("{file}:{}", reserve_line()),
             "publishes": ["shop.paid"]},
            {"name": "receipt", "event": "shop.paid", "event_version": 2, "priority": 0,
             "is_async": false, "registered": false, "timeout_ms": null, "retries": 2,
             "on_error": false, "location": format!("{file}:{}", line + 1), "publishes": []},
        ],
        "middleware": [{"name": "Tenant", "is_sync": true, "scope": null}],
        "upcasters": [{
            "name": "EventBusBuilder::upcaster::<topology::PaidV1, topology::Paid>",
            "event": "shop.paid", "from_version": 1, "to_version": 2, "location": null
        }],
        "sagas": [],
        "routes": [],
        "publishers": [{"event": "shop.order_placed", "by": "checkout API", "derived_too": false}],
    });
    assert_eq!(json, expected);
}

#[test]
fn the_check_finds_events_nobody_handles_and_handlers_nobody_feeds() {
    let (bus, _) = known_bus();
    // OrderPlaced (checkout) → reserve → Paid → receipt; audit takes ShopEvent, which
    // OrderPlaced is: no gap.
    bus.topology().check().unwrap();

    #[derive(Event)]
    #[event(name = "shop.refunded")]
    struct Refunded;
    #[derive(Event)]
    #[event(name = "shop.cancelled")]
    struct Cancelled;
    let bus = EventBus::builder()
        .publisher::<Refunded>("support desk")
        .build()
        .unwrap();
    bus.subscribe_with(SubscribeOptions::new().name("notify"), |_: &Cancelled| {})
        .forever();
    let errors = bus.topology().check().unwrap_err();
    assert_eq!(
        errors.0,
        [
            TopologyError::Unhandled {
                event: "shop.refunded v1".into(),
                published_by: vec!["support desk".into()]
            },
            TopologyError::NeverPublished {
                handler: "notify".into(),
                event: "shop.cancelled v1".into()
            }
        ]
    );
    assert!(errors
        .to_string()
        .contains("`shop.refunded v1` is published (by support desk) but nothing handles it"));
}

#[test]
fn every_gap_is_reported_not_only_the_first() {
    #[derive(Event)]
    #[event(name = "shop.refunded")]
    struct Refunded;
    #[derive(Event)]
    #[event(name = "shop.returned")]
    struct Returned;
    #[derive(Event)]
    #[event(name = "shop.disputed")]
    struct Disputed;
    let bus = EventBus::builder()
        .publisher::<Refunded>("support desk")
        .publisher::<Returned>("warehouse")
        .publisher::<Disputed>("bank")
        .build()
        .unwrap();
    // The third publisher's event has a handler; the first two have none.
    bus.subscribe(|_: &Disputed| {}).forever();
    let errors = bus.topology().check().unwrap_err();
    let unhandled: Vec<(String, Vec<String>)> = errors
        .0
        .iter()
        .map(|e| match e {
            TopologyError::Unhandled {
                event,
                published_by,
            } => (event.clone(), published_by.clone()),
            other => panic!("{other}"),
        })
        .collect();
    assert_eq!(
        unhandled,
        [
            (
                "shop.refunded v1".to_owned(),
                vec!["support desk".to_owned()]
            ),
            ("shop.returned v1".to_owned(), vec!["warehouse".to_owned()]),
        ]
    );
}

#[test]
fn an_old_version_published_counts_as_feeding_handlers_of_the_new_one() {
    let bus = EventBus::builder()
        .upcaster(|old: &PaidV1| Paid {
            cents: old.euros * 100,
        })
        .publisher::<PaidV1>("legacy billing")
        .build()
        .unwrap();
    bus.subscribe(|_: &Paid| {}).forever();
    bus.topology().check().unwrap();
}

/// A saga on the bus.
#[derive(Default, Serialize, Deserialize)]
struct Payment {
    paid: bool,
}

#[saga(name = "payment", key = String)]
impl Payment {
    #[start(by = base.order_id)]
    fn placed(&mut self, _: &OrderPlaced, _: &mut SagaContext) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagas_and_bridge_routes_are_part_of_it() {
    let bridge = Bridge::builder(RedisTransport::new(support::SHARED_URL), "topology")
        .durable::<ShopEvent>(support::unique("topology"))
        .block(Duration::from_millis(100))
        .build()
        .unwrap();
    let bus = support::bus_for(&bridge);
    let sagas = Sagas::builder().saga::<Payment>().start(&bus).unwrap();
    bridge.start(&bus).await.unwrap();
    let topology = bus.topology();
    assert_eq!(topology.sagas.len(), 1);
    assert_eq!(topology.sagas[0].name, "payment");
    assert_eq!(topology.sagas[0].starts, ["shop.order_placed"]);
    let routes: Vec<String> = topology
        .routes
        .iter()
        .map(|r| format!("{:?} {} {} {}", r.direction, r.event, r.via, r.mode))
        .collect();
    assert_eq!(
        routes,
        [
            "Out shop.event redis durable",
            "In shop.event redis durable"
        ]
    );
    let mermaid = topology.to_mermaid();
    assert!(mermaid.contains("{{\"saga payment\"}}"), "{mermaid}");
    assert!(mermaid.contains("-- starts --> s0"), "{mermaid}");
    assert!(
        mermaid.contains("[(\"redis durable eventbus-test:topology:"),
        "{mermaid}"
    );
    // The saga's step is fed by the wire route (OrderPlaced is a ShopEvent): no gap.
    topology.check().unwrap();

    // What stops leaves the topology: the bridge once its shutdown begins, the sagas when
    // they are dropped.
    assert!(bridge.shutdown().await.is_complete());
    let topology = bus.topology();
    assert!(topology.routes.is_empty(), "{:?}", topology.routes);
    assert_eq!(topology.sagas.len(), 1);
    drop(sagas);
    assert!(bus.topology().sagas.is_empty());
}
