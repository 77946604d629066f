//! Event versioning: old and new versions of one event in one system. Upcasters registered at
//! link time (`#[upcast]`) and on the builder; chains of length 1 and 2; published here,
//! emitted, followed up from handlers, received over Redis; the build-time checks of the
//! chains; a version newer than any known dead-lettered with the next event handled.

#[path = "support/redis.rs"]
mod support;

use eventbus_core::bridge::Bridge;
use eventbus_core::middleware::{self, EnvelopeMut, Flow, SyncMiddleware};
use eventbus_core::redis::RedisTransport;
use eventbus_core::{upcast, wire, BuildProblem, Context, Event, EventBus, PublishReport};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{connect, durable_service, unique, wait_until, SHARED_URL};

type Log = Arc<Mutex<Vec<String>>>;

fn log_to(log: &Log) -> impl Fn(String) + Clone + Send + Sync + 'static {
    let log = Arc::clone(log);
    move |line| log.lock().unwrap().push(line)
}

/// The common parent of every version.
#[derive(Event, Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[event(name = "test.versioning.order", distributed)]
struct OrderEvent {
    order_id: String,
}

// `test.versioning.placed` at three versions: v1 → v2 → v3, a chain of length 2.

#[derive(Event, Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[event(extends = OrderEvent, name = "test.versioning.placed", version = 1, distributed)]
struct PlacedV1 {
    #[event(base)]
    base: OrderEvent,
    /// Whole euros.
    amount: u64,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[event(extends = OrderEvent, name = "test.versioning.placed", version = 2, distributed)]
struct PlacedV2 {
    #[event(base)]
    base: OrderEvent,
    cents: u64,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[event(extends = OrderEvent, name = "test.versioning.placed", version = 3, distributed)]
struct Placed {
    #[event(base)]
    base: OrderEvent,
    cents: u64,
    currency: String,
}

#[upcast]
fn placed_v1_to_v2(old: &PlacedV1) -> PlacedV2 {
    PlacedV2 {
        base: old.base.clone(),
        cents: old.amount * 100,
    }
}

#[upcast]
fn placed_v2_to_v3(old: &PlacedV2) -> Placed {
    Placed {
        base: old.base.clone(),
        cents: old.cents,
        currency: "EUR".into(),
    }
}

fn order(id: &str) -> OrderEvent {
    OrderEvent {
        order_id: id.into(),
    }
}

fn v1(id: &str, amount: u64) -> PlacedV1 {
    PlacedV1 {
        base: order(id),
        amount,
    }
}

fn v2(id: &str, cents: u64) -> PlacedV2 {
    PlacedV2 {
        base: order(id),
        cents,
    }
}

/// A bus with a handler at every version and one at the common parent, each logging.
fn bus_with_every_version(log: &Log) -> EventBus {
    let bus = EventBus::new();
    let line = log_to(log);
    let l = line.clone();
    bus.subscribe(move |e: &Placed| {
        l(format!("v3 {} {} {}", e.base.order_id, e.cents, e.currency))
    })
    .forever();
    let l = line.clone();
    bus.subscribe(move |e: &PlacedV2| l(format!("v2 {} {}", e.base.order_id, e.cents)))
        .forever();
    let l = line.clone();
    bus.subscribe(move |e: &PlacedV1| l(format!("v1 {} {}", e.base.order_id, e.amount)))
        .forever();
    bus.subscribe(move |e: &OrderEvent| line(format!("order {}", e.order_id)))
        .forever();
    bus
}

#[tokio::test]
async fn a_chain_of_two_brings_v1_to_the_current_version_and_every_version_sees_its_own() {
    let log = Log::default();
    let bus = bus_with_every_version(&log);
    let report = bus.publish(v1("A-1", 5)).await;
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.handled(), 4);
    // Reported as published.
    assert_eq!(report.event_type().version(), 1);
    // The newest version first, then older ones, then the common parent, once.
    assert_eq!(
        *log.lock().unwrap(),
        ["v3 A-1 500 EUR", "v2 A-1 500", "v1 A-1 5", "order A-1"]
    );
}

#[tokio::test]
async fn a_chain_of_one_brings_v2_to_the_current_version() {
    let log = Log::default();
    let bus = bus_with_every_version(&log);
    assert_eq!(bus.publish(v2("A-2", 250)).await.handled(), 3);
    assert_eq!(
        *log.lock().unwrap(),
        ["v3 A-2 250 EUR", "v2 A-2 250", "order A-2"]
    );
}

#[tokio::test]
async fn the_current_version_is_dispatched_as_it_is() {
    let log = Log::default();
    let bus = bus_with_every_version(&log);
    let current = Placed {
        base: order("A-3"),
        cents: 7,
        currency: "USD".into(),
    };
    assert_eq!(bus.publish(current).await.handled(), 2);
    assert_eq!(*log.lock().unwrap(), ["v3 A-3 7 USD", "order A-3"]);
}

#[tokio::test]
async fn only_a_handler_of_the_current_version_still_gets_old_ones() {
    let log = Log::default();
    let bus = EventBus::new();
    let line = log_to(&log);
    // Async, to take the full path too.
    bus.subscribe(move |e: &Placed| {
        let line = line.clone();
        let text = format!("v3 {} {}", e.base.order_id, e.cents);
        async move {
            tokio::task::yield_now().await;
            line(text);
        }
    })
    .forever();
    for report in [
        bus.publish(v1("B-1", 1)).await,
        bus.publish(v2("B-2", 2)).await,
    ] {
        assert_eq!(report.handled(), 1, "{report:?}");
    }
    assert_eq!(*log.lock().unwrap(), ["v3 B-1 100", "v3 B-2 2"]);
}

#[tokio::test]
async fn emitted_and_followed_up_old_versions_are_upcast_too() {
    let log = Log::default();
    let bus = EventBus::new();
    let line = log_to(&log);
    bus.subscribe(move |e: &Placed| line(format!("v3 {}", e.base.order_id)))
        .forever();
    // A handler of something else publishes and emits old versions as follow-ups.
    bus.subscribe(|e: &OrderEvent, ctx: Context| {
        if e.order_id == "trigger" {
            ctx.emit(v1("emitted-by-handler", 1)).unwrap();
        }
    })
    .forever();
    bus.emit(v1("emitted", 1)).unwrap();
    bus.emit_wait(v2("emitted-wait", 1)).await.unwrap();
    assert!(bus.publish(order("trigger")).await.is_ok());
    bus.shutdown().await;
    let mut seen = log.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        ["v3 emitted", "v3 emitted-by-handler", "v3 emitted-wait"]
    );
}

/// Reads the event as published and as upcast.
struct SeesBoth(Log);

impl SyncMiddleware for SeesBoth {
    fn before(&self, envelope: &mut EnvelopeMut<'_>) -> Flow {
        let published = envelope.event::<PlacedV1>().map(|e| e.amount);
        let current = envelope.event::<Placed>().map(|e| e.cents);
        let version = envelope.event_version();
        self.0
            .lock()
            .unwrap()
            .push(format!("v{version} {published:?} {current:?}"));
        Flow::Continue
    }
}

#[tokio::test]
async fn middleware_sees_the_event_as_published_and_as_every_newer_version() {
    let log = Log::default();
    for sync in [true, false] {
        let builder = EventBus::builder();
        let builder = match sync {
            true => builder.middleware(middleware::sync(SeesBoth(Arc::clone(&log)))),
            false => {
                let log = Arc::clone(&log);
                builder.middleware(middleware::from_fn(
                    "sees-both",
                    move |env: middleware::Envelope, next: middleware::Next| {
                        let current = env.event::<Placed>().map(|e| e.cents);
                        log.lock().unwrap().push(format!("async {current:?}"));
                        next.run(env)
                    },
                ))
            }
        };
        let bus = builder.build().unwrap();
        bus.subscribe(|_: &Placed| {}).forever();
        assert_eq!(bus.publish(v1("C-1", 3)).await.handled(), 1);
    }
    assert_eq!(
        *log.lock().unwrap(),
        ["v1 Some(3) Some(300)", "async Some(300)"]
    );
}

#[tokio::test]
async fn an_old_version_nobody_takes_at_any_version_is_one_dead_event() {
    let dead = Log::default();
    let line = log_to(&dead);
    let bus = EventBus::builder()
        .on_dead_event(move |ctx: Context| line(ctx.event_name().to_owned()))
        .build()
        .unwrap();
    let report: PublishReport = bus.publish(v1("D-1", 1)).await;
    assert_eq!(report.handled(), 0);
    assert_eq!(*dead.lock().unwrap(), ["test.versioning.placed"]);
}

#[tokio::test]
async fn a_builder_upcaster_works_like_a_registered_one() {
    #[derive(Event)]
    #[event(name = "test.versioning.renamed", version = 1)]
    struct RenamedV1 {
        name: String,
    }
    #[derive(Event)]
    #[event(name = "test.versioning.renamed", version = 2)]
    struct Renamed {
        first: String,
    }
    let bus = EventBus::builder()
        .upcaster(|old: &RenamedV1| Renamed {
            first: old.name.split(' ').next().unwrap_or_default().into(),
        })
        .build()
        .unwrap();
    let seen = Log::default();
    let line = log_to(&seen);
    bus.subscribe(move |e: &Renamed| line(e.first.clone()))
        .forever();
    let report = bus
        .publish(RenamedV1 {
            name: "Ada Lovelace".into(),
        })
        .await;
    assert!(report.is_ok());
    assert_eq!(*seen.lock().unwrap(), ["Ada"]);
    // Without the upcaster, the two versions are unrelated types... and `build` says so.
    let gap = EventBus::builder()
        .upcaster(|old: &RenamedV1| Renamed {
            first: old.name.clone(),
        })
        .upcaster(|old: &RenamedV1| Renamed {
            first: old.name.clone(),
        })
        .build()
        .unwrap_err();
    assert!(matches!(
        gap.problems(),
        [BuildProblem::DuplicateUpcaster { from, .. }] if from.contains("RenamedV1")
    ));
}

mod build_errors {
    use super::*;

    macro_rules! versions {
        ($name:literal: $($ty:ident = $v:literal),*) => {
            $(
                #[derive(Event)]
                #[event(name = $name, version = $v)]
                pub struct $ty;
            )*
        };
    }

    versions!("test.gap": GapV1 = 1, GapV2 = 2, GapV3 = 3);
    versions!("test.skip": SkipV1 = 1, SkipV3 = 3);
    versions!("test.cycle": CycleV1 = 1, CycleV2 = 2);
    versions!("test.other": Other = 2);

    fn problems(builder: eventbus_core::EventBusBuilder) -> Vec<String> {
        let error = builder.build().unwrap_err();
        error.problems().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_gap_names_the_version_the_way_up_stops_at() {
        // v1 → v2 but nothing from v2, while v3 exists.
        let error = EventBus::builder()
            .upcaster(|_: &GapV1| GapV2)
            .build()
            .unwrap_err();
        let [BuildProblem::VersionGap {
            name,
            stuck_at,
            newest,
        }] = error.problems()
        else {
            panic!("{error}");
        };
        assert_eq!((name.as_str(), *newest), ("test.gap", 3));
        assert!(stuck_at.starts_with("test.gap v2 (") && stuck_at.contains("GapV2"));
        assert!(error
            .to_string()
            .contains("no upcaster leads on from test.gap v2"));
        // Closing the gap fixes it.
        EventBus::builder()
            .upcaster(|_: &GapV1| GapV2)
            .upcaster(|_: &GapV2| GapV3)
            .build()
            .unwrap();
    }

    #[test]
    fn an_upcaster_must_lead_to_the_next_version_of_the_same_event() {
        let skips = problems(EventBus::builder().upcaster(|_: &SkipV1| SkipV3));
        assert_eq!(skips.len(), 1, "{skips:?}");
        assert!(
            skips[0].contains("turns test.skip v1") && skips[0].contains("into test.skip v3"),
            "{skips:?}"
        );
        let renames = problems(EventBus::builder().upcaster(|_: &CycleV1| Other));
        assert_eq!(renames.len(), 1, "{renames:?}");
        assert!(renames[0].contains("into test.other v2"), "{renames:?}");
    }

    #[test]
    fn two_upcasters_from_one_type_name_both() {
        let error = EventBus::builder()
            .upcaster(|_: &GapV1| GapV2)
            .upcaster(|_: &GapV1| GapV2)
            .upcaster(|_: &GapV2| GapV3)
            .build()
            .unwrap_err();
        let [BuildProblem::DuplicateUpcaster {
            from,
            first,
            second,
        }] = error.problems()
        else {
            panic!("{error}");
        };
        assert!(from.contains("GapV1"));
        assert!(first.contains("upcaster::<") && second.contains("upcaster::<"));
    }

    #[test]
    fn a_cycle_is_one_problem_naming_its_types() {
        let error = EventBus::builder()
            .upcaster(|_: &CycleV1| CycleV2)
            .upcaster(|_: &CycleV2| CycleV1)
            .build()
            .unwrap_err();
        let [BuildProblem::UpcastCycle { types }] = error.problems() else {
            panic!("{error}");
        };
        assert_eq!(types.len(), 2);
        assert!(types[0].contains("CycleV1") && types[1].contains("CycleV2"));
    }
}

/// A consumer on v3 bridged over `stream`, logging each `Placed` with the version it was sent as.
async fn logging_consumer(stream: &str) -> (EventBus, Bridge, Log) {
    let (consumer, bridge) = durable_service::<OrderEvent>("consumer", stream).await;
    let log = Log::default();
    let line = log_to(&log);
    consumer
        .subscribe(move |e: &Placed, ctx: Context| {
            line(format!(
                "{} {} {} sent as v{}",
                e.base.order_id,
                e.cents,
                e.currency,
                ctx.meta().event_version()
            ))
        })
        .forever();
    (consumer, bridge, log)
}

/// A producer still on v1 and a consumer on v3, two services over Redis; then a producer on a
/// version newer than the consumer knows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_redis_v1_from_an_old_producer_reaches_v3_handlers_and_a_newer_version_is_dead() {
    let stream = unique("versioning");
    let (_consumer, consumer_bridge, log) = logging_consumer(&stream).await;
    let (producer, producer_bridge) = durable_service::<OrderEvent>("producer", &stream).await;
    assert!(producer.publish(v1("R-1", 2)).await.is_ok());
    assert!(producer.publish(v2("R-2", 300)).await.is_ok());
    // A producer upgraded before this consumer: v4 is unknown here.
    let mut redis = connect(SHARED_URL).await;
    let newer = serde_json::json!({
        "specversion": "1.0",
        "id": eventbus_core::EventId::new().to_string(),
        "source": "tests",
        "type": "test.versioning.placed",
        "eventversion": 4,
        "datacontenttype": "application/json",
        "data": {"order_id": "R-3", "cents": 1, "currency": "EUR", "channel": "web"},
    });
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("ce")
        .arg(newer.to_string())
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(producer.publish(v1("R-4", 4)).await.is_ok());
    wait_until("three events handled", Duration::from_secs(20), || async {
        log.lock().unwrap().len() >= 3
    })
    .await;
    assert_eq!(
        *log.lock().unwrap(),
        [
            "R-1 200 EUR sent as v1",
            "R-2 300 EUR sent as v2",
            "R-4 400 EUR sent as v1"
        ]
    );
    let diagnostics = consumer_bridge.diagnostics();
    assert_eq!(
        (diagnostics.newer_version, diagnostics.dead_lettered),
        (1, 1)
    );
    assert!(consumer_bridge.shutdown().await.is_complete());
    assert!(producer_bridge.shutdown().await.is_complete());
}

/// A producer already on v3 keeps sending v1 for consumers not yet upgraded; its own handlers
/// still get v3, and a consumer that knows v3 gets it back through its upcasters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_on_the_new_version_can_keep_sending_the_old_one() {
    let stream = unique("versioning-send-as");
    let (_consumer, consumer_bridge, log) = logging_consumer(&stream).await;

    let producer_bridge = Bridge::builder(RedisTransport::new(SHARED_URL), "producer")
        .durable::<OrderEvent>(&stream)
        .send_as(|e: &Placed| PlacedV1 {
            base: e.base.clone(),
            amount: e.cents / 100,
        })
        .block(Duration::from_millis(100))
        .build()
        .unwrap();
    let producer = support::bus_for(&producer_bridge);
    let line = log_to(&log);
    producer
        .subscribe(move |e: &Placed| line(format!("producer {} {}", e.base.order_id, e.currency)))
        .forever();
    producer_bridge.start(&producer).await.unwrap();
    let placed = Placed {
        base: order("S-1"),
        cents: 1234,
        currency: "USD".into(),
    };
    assert!(producer.publish(placed).await.is_ok());
    wait_until(
        "the consumer handles it",
        Duration::from_secs(20),
        || async { log.lock().unwrap().len() >= 2 },
    )
    .await;
    // What v1 cannot hold (the cents below a euro, the currency) is not sent. (The two
    // services run concurrently: their lines come in either order.)
    let mut lines = log.lock().unwrap().clone();
    lines.sort();
    assert_eq!(lines, ["S-1 1200 EUR sent as v1", "producer S-1 USD"]);
    assert!(consumer_bridge.shutdown().await.is_complete());
    assert!(producer_bridge.shutdown().await.is_complete());
}

#[test]
fn send_as_refuses_what_is_not_an_older_version() {
    let newer = Bridge::builder(RedisTransport::new(SHARED_URL), "s")
        .durable::<OrderEvent>("x")
        .send_as(|e: &PlacedV1| Placed {
            base: e.base.clone(),
            cents: 0,
            currency: String::new(),
        })
        .build()
        .err()
        .unwrap();
    assert!(
        newer
            .to_string()
            .contains("is not an older version of `test.versioning.placed`"),
        "{newer}"
    );
    let other_name = Bridge::builder(RedisTransport::new(SHARED_URL), "s")
        .durable::<OrderEvent>("x")
        .send_as(|e: &Placed| e.base.clone())
        .build()
        .err()
        .unwrap();
    assert!(
        other_name.to_string().contains("not an older version"),
        "{other_name}"
    );
}

#[test]
fn every_distributed_version_exports_its_json_schema() {
    let v3 = wire::schema("test.versioning.placed", 3).unwrap();
    assert_eq!(v3["x-event-name"], "test.versioning.placed");
    assert_eq!(v3["x-event-version"], 3);
    let properties = v3["properties"].as_object().unwrap();
    let mut fields: Vec<&str> = properties.keys().map(String::as_str).collect();
    fields.sort();
    assert_eq!(fields, ["base", "cents", "currency"]);
    let v1 = wire::schema("test.versioning.placed", 1).unwrap();
    assert!(v1["properties"].get("amount").is_some(), "{v1}");
    assert!(wire::schema("test.versioning.placed", 9).is_none());
    let all: Vec<(&str, u32)> = wire::schemas()
        .into_iter()
        .map(|(name, version, _)| (name, version))
        .filter(|(name, _)| name.starts_with("test.versioning."))
        .collect();
    assert_eq!(
        all,
        [
            ("test.versioning.order", 1),
            ("test.versioning.placed", 1),
            ("test.versioning.placed", 2),
            ("test.versioning.placed", 3)
        ]
    );
}

fn samples_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("event-samples")
}

#[test]
fn stored_samples_of_every_old_version_decode_and_upcast() {
    let checked = wire::check_samples(&EventBus::new(), samples_dir()).unwrap();
    let versions: Vec<_> = checked.by_version.into_iter().collect();
    assert_eq!(
        versions,
        [
            (("test.versioning.placed".to_owned(), 1), 1),
            (("test.versioning.placed".to_owned(), 2), 1)
        ]
    );
}

#[test]
fn a_sample_that_no_longer_decodes_or_a_version_without_samples_fails_the_check() {
    let dir = std::env::temp_dir().join(format!(
        "eventbus-samples-{}",
        eventbus_core::EventId::new()
    ));
    let v1 = dir.join("test.versioning.placed").join("v1");
    std::fs::create_dir_all(&v1).unwrap();
    // A field renamed without a new version: old events no longer decode.
    std::fs::write(
        v1.join("renamed.json"),
        r#"{"base": {"order_id": "X"}, "euros": 3}"#,
    )
    .unwrap();
    let unknown = dir.join("test.versioning.placed").join("v7");
    std::fs::create_dir_all(&unknown).unwrap();
    std::fs::write(unknown.join("future.json"), "{}").unwrap();
    let errors = wire::check_samples(&EventBus::new(), &dir).unwrap_err();
    let text = errors.to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(errors.0.len(), 3, "{text}");
    assert!(
        text.contains(
            "renamed.json: does not decode as `test.versioning.placed` v1: missing field `amount`"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "future.json: no `#[event(distributed)]` type is `test.versioning.placed` version 7"
        ),
        "{text}"
    );
    assert!(
        text.contains("no sample of `test.versioning.placed` v2"),
        "{text}"
    );
}

#[test]
fn a_panicking_upcaster_fails_the_sample_check_with_its_message() {
    #[derive(Event, Clone, Debug, Serialize, Deserialize)]
    #[event(name = "test.versioning.strict", version = 1, distributed)]
    struct StrictV1 {
        amount: i64,
    }
    #[derive(Event, Clone, Debug, Serialize, Deserialize)]
    #[event(name = "test.versioning.strict", version = 2, distributed)]
    struct Strict {
        amount: u64,
    }
    let bus = EventBus::builder()
        .upcaster(|old: &StrictV1| Strict {
            amount: u64::try_from(old.amount).expect("amounts are never negative"),
        })
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!(
        "eventbus-samples-{}",
        eventbus_core::EventId::new()
    ));
    let v1 = dir.join("test.versioning.strict").join("v1");
    std::fs::create_dir_all(&v1).unwrap();
    std::fs::write(v1.join("refund.json"), r#"{"amount": -5}"#).unwrap();
    let samples = dir.join("test.versioning.placed");
    for (version, text) in [
        (1, r#"{"base": {"order_id": "X"}, "amount": 1}"#),
        (2, r#"{"base": {"order_id": "X"}, "cents": 1}"#),
    ] {
        std::fs::create_dir_all(samples.join(format!("v{version}"))).unwrap();
        std::fs::write(samples.join(format!("v{version}")).join("ok.json"), text).unwrap();
    }
    let errors = wire::check_samples(&bus, &dir).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert!(
        errors
            .to_string()
            .contains("refund.json: its upcaster panicked: amounts are never negative"),
        "{errors}"
    );
}

#[tokio::test]
async fn a_name_listener_gets_an_old_version_once_as_the_newest_it_matches() {
    use eventbus_core::wire::{Listener, NamedEvent};
    let bus = EventBus::new();
    let seen = Log::default();
    let line = log_to(&seen);
    let listener: Listener = Arc::new(move |e: &NamedEvent| {
        let sent_as = e.meta().event_version();
        line(format!(
            "v{} {} (sent as v{sent_as})",
            e.version(),
            e.data()
        ));
    });
    bus.on("test.versioning.placed", &listener).unwrap();
    let exact = Log::default();
    let line = log_to(&exact);
    let v1_only: Listener = Arc::new(move |e: &NamedEvent| line(format!("v{}", e.version())));
    bus.on("test.versioning.placed@1", &v1_only).unwrap();
    // Only the listeners: v2 takes the short way (run as its next version), v1 the long one.
    assert_eq!(bus.publish(v2("N-2", 5)).await.handled(), 1);
    assert_eq!(bus.publish(v1("N-1", 1)).await.handled(), 2);
    assert_eq!(
        *seen.lock().unwrap(),
        [
            r#"v3 {"base":{"order_id":"N-2"},"cents":5,"currency":"EUR"} (sent as v2)"#,
            r#"v3 {"base":{"order_id":"N-1"},"cents":100,"currency":"EUR"} (sent as v1)"#,
        ]
    );
    assert_eq!(*exact.lock().unwrap(), ["v1"]);
}

#[tokio::test]
async fn handlers_of_the_next_version_only_see_the_same_event_either_way() {
    // One step to the handlers' version and no handler of the old one: the event runs as its
    // next version alone. Its report and context still name the version published.
    let bus = EventBus::new();
    let seen = Log::default();
    let line = log_to(&seen);
    bus.subscribe(move |e: &Placed, ctx: Context| {
        line(format!(
            "{} {} v{} {}",
            e.base.order_id,
            e.cents,
            ctx.meta().event_version(),
            ctx.event_name()
        ))
    })
    .forever();
    let report = bus.publish(v2("D-1", 7)).await;
    assert!(report.is_ok());
    assert_eq!((report.handled(), report.event_type().version()), (1, 2));
    assert_eq!(*seen.lock().unwrap(), ["D-1 7 v2 test.versioning.placed"]);
}

// `test.versioning.counted` at two versions, its upcaster counting its calls.

#[derive(Event, Clone, Debug)]
#[event(name = "test.versioning.counted", version = 1)]
struct CountedV1 {
    n: u64,
}

#[derive(Event, Clone, Debug)]
#[event(name = "test.versioning.counted", version = 2)]
struct Counted {
    n: u64,
    doubled: u64,
}

static COUNTED_UPCASTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[upcast]
fn counted_v1_to_v2(old: &CountedV1) -> Counted {
    COUNTED_UPCASTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    Counted {
        n: old.n,
        doubled: old.n * 2,
    }
}

#[tokio::test]
async fn an_upcaster_runs_once_per_event_on_every_path() {
    // Inline (the upcaster compiled with the next version's dispatch), through async
    // middleware, with an async handler, and emitted: each old event is upcast exactly once.
    let calls = || COUNTED_UPCASTS.load(std::sync::atomic::Ordering::SeqCst);
    let with_middleware = EventBus::builder()
        .middleware(middleware::from_fn(
            "pass",
            |env: middleware::Envelope, next: middleware::Next| next.run(env),
        ))
        .build()
        .unwrap();
    let with_async_handler = EventBus::new();
    let seen = Log::default();
    for (bus, async_handler) in [
        (EventBus::new(), false),
        (with_middleware, false),
        (with_async_handler, true),
    ] {
        let line = log_to(&seen);
        match async_handler {
            false => bus.subscribe(move |e: &Counted| line(format!("{} {}", e.n, e.doubled))),
            true => bus.subscribe(move |e: &Counted| {
                let text = format!("{} {}", e.n, e.doubled);
                let line = line.clone();
                async move { line(text) }
            }),
        }
        .forever();
        let before = calls();
        assert_eq!(bus.publish(CountedV1 { n: 21 }).await.handled(), 1);
        assert_eq!(calls() - before, 1);
        bus.emit(CountedV1 { n: 4 }).unwrap();
        bus.shutdown().await;
        assert_eq!(calls() - before, 2);
    }
    assert_eq!(*seen.lock().unwrap(), ["21 42", "4 8"].repeat(3));
}
