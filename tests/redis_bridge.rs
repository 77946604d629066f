//! The Redis bridge against the real server on 127.0.0.1:6379 (the CI script starts it):
//! round trips, own events, competing consumers, crash recovery, dead letters, bad input.
//! Every test uses channels and streams of its own, so tests run in parallel.

#[path = "support/redis.rs"]
mod support;

use eventbus_core::bridge::Bridge;
use eventbus_core::redis::RedisTransport;
use eventbus_core::{middleware, Context, Event, EventBus};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{connect, unique, wait_until, SHARED_URL};

const LIMIT: Duration = Duration::from_secs(20);

#[derive(Event, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[event(name = "test.domain", distributed)]
struct DomainEvent {
    at_ms: u64,
}

#[derive(Event, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[event(extends = DomainEvent, name = "test.order", distributed)]
struct OrderEvent {
    #[event(base)]
    base: DomainEvent,
    order_id: String,
}

#[derive(Event, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[event(extends = OrderEvent, name = "test.order.placed", version = 2, distributed)]
struct OrderPlaced {
    #[event(base)]
    base: OrderEvent,
    cents: u64,
}

fn placed(n: u64) -> OrderPlaced {
    OrderPlaced {
        base: OrderEvent {
            base: DomainEvent { at_ms: n },
            order_id: format!("A-{n}"),
        },
        cents: n * 100,
    }
}

type Log = Arc<Mutex<Vec<String>>>;

/// A bus bridged to Redis for `service`, its bridge, and a log its handlers write to.
async fn service(
    service: &str,
    configure: impl FnOnce(
        eventbus_core::bridge::BridgeBuilder<RedisTransport>,
    ) -> eventbus_core::bridge::BridgeBuilder<RedisTransport>,
) -> (EventBus, Bridge, Log) {
    let bridge = configure(Bridge::builder(RedisTransport::new(SHARED_URL), service))
        .block(Duration::from_millis(100))
        .build()
        .unwrap();
    let bus = EventBus::builder()
        .middleware(middleware::from_fn(
            "tenant",
            |mut env: middleware::Envelope, next: middleware::Next| async move {
                if env.origin().is_none() {
                    env.headers_mut().insert("tenant", "acme");
                }
                next.run(env).await
            },
        ))
        .middleware(bridge.outbound())
        .build()
        .unwrap();
    let log: Log = Arc::default();
    bridge.start(&bus).await.unwrap();
    (bus, bridge, log)
}

fn record_all_levels(bus: &EventBus, log: &Log) {
    let l = log.clone();
    bus.subscribe(move |e: &DomainEvent, ctx: Context| {
        l.lock().unwrap().push(format!(
            "domain {} from {:?} tenant {:?}",
            e.at_ms,
            ctx.origin(),
            ctx.header("tenant")
        ))
    })
    .forever();
    let l = log.clone();
    bus.subscribe(move |e: &OrderEvent| l.lock().unwrap().push(format!("order {}", e.order_id)))
        .forever();
    let l = log.clone();
    bus.subscribe(move |e: &OrderPlaced, ctx: Context| {
        l.lock().unwrap().push(format!(
            "placed {} {} v{}",
            e.cents,
            ctx.event_name(),
            ctx.event_version()
        ))
    })
    .forever();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_round_trip_of_a_three_level_hierarchy_and_own_events_skipped() {
    let channel = unique("broadcast");
    let (orders_bus, orders, orders_log) =
        service("orders", |b| b.broadcast::<DomainEvent>(&channel)).await;
    let (shipping_bus, shipping, shipping_log) =
        service("shipping", |b| b.broadcast::<DomainEvent>(&channel)).await;
    record_all_levels(&orders_bus, &orders_log);
    record_all_levels(&shipping_bus, &shipping_log);
    let ids = Arc::new(Mutex::new(Vec::new()));
    let i = ids.clone();
    shipping_bus
        .subscribe(move |_: &OrderPlaced, ctx: Context| {
            i.lock()
                .unwrap()
                .push((ctx.event_id(), ctx.correlation_id()))
        })
        .forever();

    let report = orders_bus.publish(placed(7)).await;
    assert!(report.is_ok(), "{report:?}");
    wait_until("shipping got the event", LIMIT, || async {
        shipping_log.lock().unwrap().len() == 3
    })
    .await;

    assert_eq!(
        *shipping_log.lock().unwrap(),
        [
            "placed 700 test.order.placed v2",
            "order A-7",
            "domain 7 from Some(\"orders\") tenant Some(\"acme\")",
        ]
    );
    assert_eq!(
        *ids.lock().unwrap(),
        [(report.event_id(), report.event_id())],
        "ids travel"
    );
    // The sender handled it locally once, and skipped its own copy from Redis.
    wait_until("orders saw its own copy", LIMIT, || async {
        orders.diagnostics().skipped_own == 1
    })
    .await;
    assert_eq!(orders_log.lock().unwrap().len(), 3);
    assert_eq!(orders.diagnostics().sent, 1);
    assert_eq!(shipping.diagnostics().dispatched, 1);

    assert!(orders.shutdown().await.is_complete());
    assert!(shipping.shutdown().await.is_complete());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_competing_consumers_split_the_work_and_other_services_get_everything() {
    let stream = unique("durable");
    let (orders_bus, orders, _) = service("orders", |b| b.durable::<OrderEvent>(&stream)).await;
    let handled: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let mut bridges = Vec::new();
    for (service_id, instance) in [("shipping", "s1"), ("shipping", "s2"), ("billing", "b1")] {
        let (bus, bridge, _) = service(service_id, |b| b.durable::<OrderEvent>(&stream)).await;
        let h = handled.clone();
        bus.subscribe(move |e: &OrderPlaced| {
            h.lock()
                .unwrap()
                .push((instance.to_owned(), e.base.order_id.clone()))
        })
        .forever();
        bridges.push(bridge);
    }

    for n in 0..200 {
        orders_bus.emit(placed(n)).unwrap();
    }
    wait_until("every service handled every event", LIMIT, || async {
        handled.lock().unwrap().len() == 400
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await; // nothing more may arrive

    let handled = handled.lock().unwrap().clone();
    assert_eq!(handled.len(), 400, "no double handling");
    let of = |who: &[&str]| -> Vec<String> {
        let mut ids: Vec<String> = handled
            .iter()
            .filter(|(i, _)| who.contains(&i.as_str()))
            .map(|(_, id)| id.clone())
            .collect();
        ids.sort();
        ids
    };
    let expected: Vec<String> = {
        let mut ids: Vec<String> = (0..200).map(|n| format!("A-{n}")).collect();
        ids.sort();
        ids
    };
    assert_eq!(
        of(&["s1", "s2"]),
        expected,
        "shipping's instances together: each event once"
    );
    assert_eq!(of(&["b1"]), expected, "billing: every event");
    let s1 = of(&["s1"]).len();
    assert!(
        s1 > 0 && s1 < 200,
        "both shipping instances took work (s1 took {s1})"
    );
    drop(handled);

    orders_bus.shutdown().await;
    assert!(orders.shutdown().await.is_complete());
    for bridge in bridges {
        assert!(bridge.shutdown().await.is_complete());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_of_a_consumer_that_died_mid_work_are_claimed_by_a_live_one() {
    let stream = unique("crash");
    let mut redis = connect(SHARED_URL).await;
    // The service's group exists and a first instance read three entries, then died unacked.
    let _: () = redis
        .xgroup_create_mkstream(&stream, "shipping", "$")
        .await
        .unwrap();
    let (orders_bus, orders, _) = service("orders", |b| b.durable::<OrderEvent>(&stream)).await;
    for n in 1..=3 {
        let _ = orders_bus.publish(placed(n)).await;
    }
    wait_until("the entries are written", LIMIT, || {
        let mut redis = redis.clone();
        let stream = stream.clone();
        async move { redis.xlen::<_, usize>(&stream).await.unwrap() == 3 }
    })
    .await;
    let taken: redis::streams::StreamReadReply = redis
        .xread_options(
            &[&stream],
            &[">"],
            &redis::streams::StreamReadOptions::default()
                .group("shipping", "crashed-instance")
                .count(10),
        )
        .await
        .unwrap();
    assert_eq!(
        taken.keys[0].ids.len(),
        3,
        "the dead instance holds all three, pending"
    );

    let (bus, survivor, _) = service("shipping", |b| {
        b.durable::<OrderEvent>(&stream)
            .claim_idle(Duration::from_millis(200))
    })
    .await;
    let handled = Arc::new(Mutex::new(HashSet::new()));
    let h = handled.clone();
    bus.subscribe(move |e: &OrderPlaced| {
        h.lock().unwrap().insert(e.base.order_id.clone());
    })
    .forever();
    wait_until(
        "the survivor handled the orphaned entries",
        LIMIT,
        || async { handled.lock().unwrap().len() == 3 },
    )
    .await;
    all_acknowledged(&stream, "shipping").await;
    assert!(survivor.shutdown().await.is_complete());
    assert!(orders.shutdown().await.is_complete());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_always_failing_handler_sends_the_entry_to_the_dead_letter_stream_after_n_tries() {
    let stream = unique("poison");
    let (orders_bus, orders, _) = service("orders", |b| b.durable::<OrderEvent>(&stream)).await;
    let (bus, billing, _) = service("billing", |b| {
        b.durable::<OrderEvent>(&stream)
            .max_deliveries(3)
            .claim_idle(Duration::from_millis(100))
    })
    .await;
    let attempts = Arc::new(Mutex::new(0));
    let a = attempts.clone();
    bus.subscribe(move |_: &OrderPlaced| -> Result<(), String> {
        *a.lock().unwrap() += 1;
        Err("ledger rejects it".into())
    })
    .forever();

    let _ = orders_bus.publish(placed(1)).await;
    let dead = dead_letters(&stream, 1).await;
    assert_eq!(*attempts.lock().unwrap(), 3);
    let (reason, payload) = &dead[0];
    assert!(reason.starts_with("failed 3 deliveries; last:"), "{reason}");
    assert!(reason.contains("ledger rejects it"), "{reason}");
    assert!(payload.contains("\"type\":\"test.order.placed\""));
    assert_eq!(billing.diagnostics().dead_lettered, 1);
    assert!(billing.shutdown().await.is_complete());
    assert!(orders.shutdown().await.is_complete());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_bad_durable_payload_is_dead_lettered_and_the_next_good_one_handled() {
    let stream = unique("bad-durable");
    let (bus, billing, log) = service("billing", |b| b.durable::<OrderEvent>(&stream)).await;
    record_all_levels(&bus, &log);
    let mut redis = connect(SHARED_URL).await;
    let good = good_cloudevent(
        "test.order.placed",
        2,
        &serde_json::to_value(placed(5)).unwrap(),
    );
    let bad = [
        "{not json".to_owned(),
        r#"{"specversion":"1.0","id":"x","type":"test.order"}"#.to_owned(),
        good_cloudevent("test.nobody", 1, &serde_json::json!({})),
        good_cloudevent(
            "test.order.placed",
            99,
            &serde_json::to_value(placed(5)).unwrap(),
        ),
        good_cloudevent(
            "test.order.placed",
            2,
            &serde_json::json!({"cents": "lots"}),
        ),
    ];
    for payload in &bad {
        let _: String = redis.xadd(&stream, "*", &[("ce", payload)]).await.unwrap();
    }
    let _: String = redis
        .xadd(&stream, "*", &[("other", "no ce field")])
        .await
        .unwrap();
    let _: String = redis.xadd(&stream, "*", &[("ce", &good)]).await.unwrap();

    wait_until("the good event is handled", LIMIT, || async {
        log.lock().unwrap().len() == 3
    })
    .await;
    let reasons: Vec<String> = dead_letters(&stream, 6)
        .await
        .into_iter()
        .map(|(reason, _)| reason)
        .collect();
    assert!(
        reasons[0].starts_with("malformed CloudEvent"),
        "{reasons:?}"
    );
    assert_eq!(reasons[1], "malformed CloudEvent: missing `source`");
    assert_eq!(reasons[2], "unknown event type `test.nobody`");
    assert_eq!(
        reasons[3],
        "event type `test.order.placed` arrived at version 99, newer than any this process \
         knows (newest: 2); upgrade consumers before producers"
    );
    assert!(
        reasons[4].starts_with("data does not fit `test.order.placed` v2"),
        "{reasons:?}"
    );
    assert_eq!(reasons[5], "the entry has neither a `ce` nor a `ces` field");
    let d = billing.diagnostics();
    assert_eq!(
        (d.malformed, d.unknown_type, d.newer_version, d.bad_data),
        (3, 1, 1, 1)
    );
    assert_eq!((d.dead_lettered, d.dispatched), (6, 1));
    assert!(billing.shutdown().await.is_complete());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_broadcast_payloads_are_counted_and_the_next_good_one_handled() {
    let channel = unique("bad-broadcast");
    let (bus, shipping, log) = service("shipping", |b| b.broadcast::<DomainEvent>(&channel)).await;
    record_all_levels(&bus, &log);
    let mut redis = connect(SHARED_URL).await;
    for payload in [
        "{not json".to_owned(),
        good_cloudevent("test.nobody", 1, &serde_json::json!({})),
        good_cloudevent("test.domain", 7, &serde_json::json!({"at_ms": 1})),
        good_cloudevent("test.domain", 1, &serde_json::json!({"at_ms": "soon"})),
        good_cloudevent("test.domain", 1, &serde_json::json!({"at_ms": 42})),
    ] {
        let _: () = redis.publish(&channel, payload).await.unwrap();
    }
    wait_until("the good event is handled", LIMIT, || async {
        !log.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(
        *log.lock().unwrap(),
        ["domain 42 from Some(\"tests\") tenant None"]
    );
    let d = shipping.diagnostics();
    assert_eq!(
        (
            d.received,
            d.malformed,
            d.unknown_type,
            d.newer_version,
            d.bad_data,
            d.dispatched
        ),
        (5, 1, 1, 1, 1, 1)
    );
    assert!(shipping.shutdown().await.is_complete());
}

#[tokio::test]
async fn routing_an_event_that_is_not_distributed_is_a_failure_in_the_report() {
    #[derive(Event)]
    #[event(name = "test.local_only")]
    struct LocalOnly;
    let channel = unique("not-distributed");
    let (bus, bridge, _) = service("orders", |b| b.broadcast::<LocalOnly>(&channel)).await;
    let report = bus.publish(LocalOnly).await;
    assert_eq!(report.failures().len(), 1);
    assert!(report.failures()[0].is_middleware());
    assert_eq!(
        report.failures()[0].to_string(),
        "`test.local_only` cannot be sent: mark its type `#[event(distributed)]`"
    );
    assert!(bridge.shutdown().await.is_complete());
}

#[test]
fn a_bridge_without_routes_or_with_a_bad_url_does_not_build() {
    let error = Bridge::builder(RedisTransport::new(SHARED_URL), "orders")
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("no routes"), "{error}");
    let error = Bridge::builder(RedisTransport::new("not a url"), "orders")
        .broadcast::<DomainEvent>("c")
        .build()
        .unwrap_err();
    assert!(error.to_string().starts_with("redis:"), "{error}");
}

/// Order ids of the `OrderPlaced` events `bus` handles, in the order handled.
fn record_orders(bus: &EventBus) -> Log {
    let log: Log = Arc::default();
    let l = log.clone();
    bus.subscribe(move |e: &OrderPlaced| l.lock().unwrap().push(e.base.order_id.clone()))
        .forever();
    log
}

/// The ids of every entry of `stream` that holds packed events (`ces`), and the entry count.
async fn packed_entries(
    redis: &mut redis::aio::MultiplexedConnection,
    stream: &str,
) -> (usize, usize) {
    let entries: redis::streams::StreamRangeReply = redis.xrange_all(stream).await.unwrap();
    let packed = entries
        .ids
        .iter()
        .filter(|e| e.map.contains_key("ces"))
        .count();
    (packed, entries.ids.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packed_entries_carry_every_event_in_order_to_every_service() {
    let stream = unique("packed");
    let (orders_bus, orders, _) = service("orders", |b| {
        b.durable::<OrderEvent>(&stream).events_per_entry(16)
    })
    .await;
    let (billing_bus, billing, _) = service("billing", |b| b.durable::<OrderEvent>(&stream)).await;
    let (audit_bus, audit, _) = service("audit", |b| b.durable::<OrderEvent>(&stream)).await;
    let (billed, audited) = (record_orders(&billing_bus), record_orders(&audit_bus));
    const EVENTS: u64 = 2_000;
    for n in 0..EVENTS {
        let _ = orders_bus.publish(placed(n)).await;
    }
    let expected: Vec<String> = (0..EVENTS).map(|n| format!("A-{n}")).collect();
    wait_until("both services handled every event", LIMIT, || async {
        billed.lock().unwrap().len() >= EVENTS as usize
            && audited.lock().unwrap().len() >= EVENTS as usize
    })
    .await;
    // One consumer per service reads one stream in order, and nothing came twice.
    assert_eq!(*billed.lock().unwrap(), expected);
    assert_eq!(*audited.lock().unwrap(), expected);
    let mut redis = connect(SHARED_URL).await;
    let (packed, entries) = packed_entries(&mut redis, &stream).await;
    assert!(
        packed > 0 && entries < EVENTS as usize,
        "{packed} packed of {entries} entries for {EVENTS} events"
    );
    for group in ["billing", "audit"] {
        all_acknowledged(&stream, group).await;
    }
    assert_eq!(orders.diagnostics().sent, EVENTS);
    for bridge in [billing, audit, orders] {
        assert!(bridge.shutdown().await.is_complete());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_event_of_a_packed_entry_is_handled_again_and_its_mates_are_not() {
    let stream = unique("packed-retry");
    let (orders_bus, orders, _) = service("orders", |b| {
        b.durable::<OrderEvent>(&stream).events_per_entry(64)
    })
    .await;
    let (bus, billing, _) = service("billing", |b| {
        b.durable::<OrderEvent>(&stream)
            .claim_idle(Duration::from_millis(200))
    })
    .await;
    // The third event fails the first time it is handled.
    let handled: Log = Arc::default();
    let (h, failed) = (handled.clone(), Arc::new(Mutex::new(false)));
    bus.subscribe(move |e: &OrderPlaced| -> Result<(), String> {
        let mut failed = failed.lock().unwrap();
        if e.base.order_id == "A-2" && !*failed {
            *failed = true;
            return Err("ledger busy".into());
        }
        h.lock().unwrap().push(e.base.order_id.clone());
        Ok(())
    })
    .forever();
    // Sent in a burst (a publish does not wait for Redis), so that they share entries.
    for n in 0..200 {
        let _ = orders_bus.publish(placed(n)).await;
    }
    wait_until("every event is handled", LIMIT, || async {
        handled.lock().unwrap().len() >= 200
    })
    .await;
    let mut redis = connect(SHARED_URL).await;
    all_acknowledged(&stream, "billing").await;
    let mut ids = handled.lock().unwrap().clone();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200, "every event handled");
    assert_eq!(handled.lock().unwrap().len(), 200, "and none twice");
    let (packed, _) = packed_entries(&mut redis, &stream).await;
    let d = billing.diagnostics();
    assert!(packed > 0, "the events were packed");
    // The failed event's entry came back whole: its mates were skipped as duplicates.
    assert!(d.duplicates > 0, "{d:?}");
    assert_eq!(d.handler_failures, 1, "{d:?}");
    assert!(billing.shutdown().await.is_complete());
    assert!(orders.shutdown().await.is_complete());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_in_packed_entries_are_dead_lettered_one_by_one_and_the_good_handled() {
    let stream = unique("packed-bad");
    let (bus, billing, _) = service("billing", |b| b.durable::<OrderEvent>(&stream)).await;
    let handled = record_orders(&bus);
    let mut redis = connect(SHARED_URL).await;
    let good = |n| {
        good_cloudevent(
            "test.order.placed",
            2,
            &serde_json::to_value(placed(n)).unwrap(),
        )
    };
    let no_source = r#"{"specversion":"1.0","id":"x","type":"test.order"}"#;
    for packed in [
        format!("[{},{no_source},{}]", good(1), good(2)),
        "[]".to_owned(),
        "{not json".to_owned(),
        format!("[{}]", good(3)),
    ] {
        let _: String = redis.xadd(&stream, "*", &[("ces", packed)]).await.unwrap();
    }
    wait_until("the good events are handled", LIMIT, || async {
        handled.lock().unwrap().len() == 3
    })
    .await;
    let dead = dead_letters(&stream, 3).await;
    assert_eq!(*handled.lock().unwrap(), ["A-1", "A-2", "A-3"]);
    assert_eq!(dead[0].0, "malformed CloudEvent: missing `source`");
    assert_eq!(dead[0].1, no_source, "only the bad event, not its mates");
    assert_eq!(dead[1].0, "the entry's `ces` is empty");
    assert!(dead[2].0.starts_with("malformed CloudEvent"));
    assert_eq!(dead[2].1, "{not json", "kept whole");
    all_acknowledged(&stream, "billing").await;
    assert!(billing.shutdown().await.is_complete());
}

#[test]
fn packing_needs_a_durable_route_and_at_least_one_event_per_entry() {
    let error = Bridge::builder(RedisTransport::new(SHARED_URL), "orders")
        .broadcast::<DomainEvent>("c")
        .events_per_entry(8)
        .build()
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("no route of this bridge is durable"),
        "{error}"
    );
    let error = Bridge::builder(RedisTransport::new(SHARED_URL), "orders")
        .durable::<DomainEvent>("s")
        .events_per_entry(0)
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("events_per_entry(0)"), "{error}");
    assert!(Bridge::builder(RedisTransport::new(SHARED_URL), "orders")
        .send_durable::<DomainEvent>("s")
        .events_per_entry(8)
        .build()
        .is_ok());
}

/// Waits until `group` has acknowledged every entry of `stream` it read (acks go out with the
/// consumer's next read, so shortly after the handlers ran).
async fn all_acknowledged(stream: &str, group: &str) {
    let redis = connect(SHARED_URL).await;
    wait_until("every entry is acknowledged", LIMIT, || {
        let mut redis = redis.clone();
        async move {
            let pending: redis::streams::StreamPendingReply =
                redis.xpending(stream, group).await.unwrap();
            pending.count() == 0
        }
    })
    .await;
}

/// The (reason, payload) of each dead letter of `stream`, once there are `count` of them.
async fn dead_letters(stream: &str, count: usize) -> Vec<(String, String)> {
    let redis = connect(SHARED_URL).await;
    let dead = format!("{stream}:dead");
    wait_until("the dead letters are written", LIMIT, || {
        let mut redis = redis.clone();
        let dead = dead.clone();
        async move { redis.xlen::<_, usize>(&dead).await.unwrap() == count }
    })
    .await;
    let entries: redis::streams::StreamRangeReply = redis.clone().xrange_all(&dead).await.unwrap();
    let field = |entry: &redis::streams::StreamId, name: &str| -> String {
        redis::from_redis_value(entry.map[name].clone()).unwrap()
    };
    entries
        .ids
        .iter()
        .map(|entry| (field(entry, "reason"), field(entry, "payload")))
        .collect()
}

fn good_cloudevent(name: &str, version: u32, data: &serde_json::Value) -> String {
    serde_json::json!({
        "specversion": "1.0",
        "id": eventbus_core::EventId::new().to_string(),
        "source": "tests",
        "type": name,
        "eventversion": version,
        "datacontenttype": "application/json",
        "data": data,
    })
    .to_string()
}
