//! The Redis bridge's lifecycle and bookkeeping: shutdown within a deadline while the server is
//! down (handing back what was not sent), where a new consumer group starts, entries no handler
//! takes, a bus without the outbound side, dropping a bridge, and counters by cause that match
//! the documentation. Tests that stop the server use a private one.

#[path = "support/redis.rs"]
mod support;

use eventbus_core::bridge::{Bridge, BridgeBuilder, Unhandled};
use eventbus_core::redis::{GroupStart, RedisTransport};
use eventbus_core::{Event, EventBus};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{connect, unique, wait_until, PrivateRedis, SHARED_URL};

const LIMIT: Duration = Duration::from_secs(20);

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(name = "lifecycle.job", distributed)]
struct Job(u64);

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(name = "lifecycle.ping", distributed)]
struct Ping(u64);

/// A bus with the bridge's outbound side, and the started bridge.
async fn started(builder: BridgeBuilder<RedisTransport>) -> (EventBus, Bridge) {
    started_with(builder, |_| ()).await.0
}

/// A counter of the jobs a bridged bus handles, subscribed before the bridge starts.
async fn started_counting(builder: BridgeBuilder<RedisTransport>) -> (Arc<AtomicU64>, Bridge) {
    let ((_, bridge), count) = started_with(builder, count_jobs).await;
    (count, bridge)
}

/// [`started`], with `handlers` subscribed before the bridge starts reading.
async fn started_with<R>(
    builder: BridgeBuilder<RedisTransport>,
    handlers: impl FnOnce(&EventBus) -> R,
) -> ((EventBus, Bridge), R) {
    let bridge = builder.block(Duration::from_millis(100)).build().unwrap();
    let bus = support::bus_for(&bridge);
    let subscribed = handlers(&bus);
    bridge.start(&bus).await.unwrap();
    ((bus, bridge), subscribed)
}

fn count_jobs(bus: &EventBus) -> Arc<AtomicU64> {
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    bus.subscribe(move |_: &Job| {
        c.fetch_add(1, Ordering::SeqCst);
    })
    .forever();
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_redis_is_down_ends_by_its_deadline_and_hands_back_the_unsent_events() {
    let mut server = PrivateRedis::start();
    let (bus, bridge) = started(
        Bridge::builder(RedisTransport::new(server.url()), "orders")
            .durable::<Job>("lifecycle:jobs")
            .broadcast::<Ping>("lifecycle:pings")
            .shutdown_timeout(Duration::from_millis(500)),
    )
    .await;
    server.stop();
    for n in 0..10 {
        assert!(bus.publish(Job(n)).await.is_ok(), "queued for sending");
    }
    let started = Instant::now();
    let report = tokio::time::timeout(Duration::from_secs(10), bridge.shutdown())
        .await
        .expect("shutdown keeps its deadline while Redis is down");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(!report.is_complete());
    let unsent = report.unsent();
    assert_eq!(unsent.len(), 10, "every queued job is handed back");
    for (n, event) in unsent.iter().enumerate() {
        assert!(event.is_durable());
        assert_eq!(event.target(), "lifecycle:jobs");
        let json: serde_json::Value = serde_json::from_str(event.payload()).unwrap();
        assert_eq!(json["type"], "lifecycle.job");
        assert_eq!(json["data"], n as u64);
    }
    assert_eq!(bridge.diagnostics().unsent_at_shutdown, 10);
    // After shutdown, routed events are refused by the outbound side, not queued and lost.
    let late = bus.publish(Job(99)).await;
    assert_eq!(late.failures().len(), 1, "{late:?}");
    assert!(late.failures()[0].to_string().contains("shut down"));
    assert_eq!(bridge.diagnostics().send_failed_stopped, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_group_starts_where_the_user_says() {
    let stream = unique("history");
    let (orders_bus, orders) =
        started(Bridge::builder(RedisTransport::new(SHARED_URL), "orders").durable::<Job>(&stream))
            .await;
    for n in 0..3 {
        assert!(orders_bus.publish(Job(n)).await.is_ok());
    }
    let mut redis = connect(SHARED_URL).await;
    wait_until("the history is written", LIMIT, || {
        let (mut redis, stream) = (redis.clone(), stream.clone());
        async move { redis.xlen::<_, usize>(&stream).await.unwrap() == 3 }
    })
    .await;
    let ids: redis::streams::StreamRangeReply = redis.xrange_all(&stream).await.unwrap();
    let second = ids.ids[1].id.clone();

    let join = |service: &str, start: Option<GroupStart>| {
        let mut builder =
            Bridge::builder(RedisTransport::new(SHARED_URL), service).durable::<Job>(&stream);
        if let Some(start) = start {
            builder = builder.group_start(start);
        }
        builder
    };
    let (audited, auditor) = started_counting(join("auditor", Some(GroupStart::Beginning))).await;
    let (tailed, tail) = started_counting(join("tail", Some(GroupStart::After(second)))).await;
    let (later, late) = started_counting(join("late", None)).await;

    assert!(orders_bus.publish(Job(3)).await.is_ok());
    wait_until("every group has the new job", LIMIT, || {
        let (a, t, l) = (audited.clone(), tailed.clone(), later.clone());
        async move {
            a.load(Ordering::SeqCst) == 4
                && t.load(Ordering::SeqCst) == 2
                && l.load(Ordering::SeqCst) == 1
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        audited.load(Ordering::SeqCst),
        4,
        "beginning: the history and the new job"
    );
    assert_eq!(
        tailed.load(Ordering::SeqCst),
        2,
        "after the second: the third and the new one"
    );
    assert_eq!(
        later.load(Ordering::SeqCst),
        1,
        "the default (now): only the new job"
    );
    for bridge in [orders, auditor, tail, late] {
        assert!(bridge.shutdown().await.is_complete());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_that_arrives_before_its_handler_is_kept_and_handled_once_it_is_subscribed() {
    let stream = unique("early");
    let (orders_bus, orders) =
        started(Bridge::builder(RedisTransport::new(SHARED_URL), "orders").durable::<Job>(&stream))
            .await;
    let (billing_bus, billing) = started(
        Bridge::builder(RedisTransport::new(SHARED_URL), "billing")
            .durable::<Job>(&stream)
            .claim_idle(Duration::from_millis(200)),
    )
    .await;
    assert!(orders_bus.publish(Job(7)).await.is_ok());
    wait_until("billing saw an entry nobody took", LIMIT, || {
        let billing = billing.clone();
        async move { billing.diagnostics().unhandled >= 1 }
    })
    .await;
    let count = count_jobs(&billing_bus);
    wait_until(
        "the entry is delivered again to the new handler",
        LIMIT,
        || {
            let count = count.clone();
            async move { count.load(Ordering::SeqCst) == 1 }
        },
    )
    .await;
    let mut redis = connect(SHARED_URL).await;
    let dead: usize = redis.xlen(format!("{stream}:dead")).await.unwrap();
    assert_eq!(dead, 0);
    assert!(billing.shutdown().await.is_complete());
    assert!(orders.shutdown().await.is_complete());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_no_handler_takes_are_dead_lettered_or_acknowledged_as_configured_and_counted() {
    let stream = unique("unhandled");
    let (orders_bus, orders) =
        started(Bridge::builder(RedisTransport::new(SHARED_URL), "orders").durable::<Job>(&stream))
            .await;
    let (_dead_bus, dead) = started(
        Bridge::builder(RedisTransport::new(SHARED_URL), "strict")
            .durable::<Job>(&stream)
            .on_unhandled(Unhandled::DeadLetter),
    )
    .await;
    let (_lax_bus, lax) = started(
        Bridge::builder(RedisTransport::new(SHARED_URL), "lax")
            .durable::<Job>(&stream)
            .on_unhandled(Unhandled::Acknowledge),
    )
    .await;
    let (_retry_bus, retry) = started(
        Bridge::builder(RedisTransport::new(SHARED_URL), "patient")
            .durable::<Job>(&stream)
            .claim_idle(Duration::from_millis(100))
            .max_deliveries(2),
    )
    .await;
    assert!(orders_bus.publish(Job(1)).await.is_ok());
    let mut redis = connect(SHARED_URL).await;
    let dead_stream = format!("{stream}:dead");
    wait_until("strict and patient dead-letter it", LIMIT, || {
        let (mut redis, dead_stream) = (redis.clone(), dead_stream.clone());
        async move { redis.xlen::<_, usize>(&dead_stream).await.unwrap() == 2 }
    })
    .await;
    let entries: redis::streams::StreamRangeReply = redis.xrange_all(&dead_stream).await.unwrap();
    let mut reasons: Vec<(String, String)> = entries
        .ids
        .iter()
        .map(|e| {
            (
                redis::from_redis_value(e.map["group"].clone()).unwrap(),
                redis::from_redis_value(e.map["reason"].clone()).unwrap(),
            )
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            (
                "patient".to_owned(),
                "no local handler takes `lifecycle.job` after 2 deliveries".to_owned()
            ),
            (
                "strict".to_owned(),
                "no local handler takes `lifecycle.job`".to_owned()
            ),
        ]
    );
    wait_until("lax acknowledged it", LIMIT, || {
        let (mut redis, stream) = (redis.clone(), stream.clone());
        async move {
            let pending: redis::streams::StreamPendingReply =
                redis.xpending(&stream, "lax").await.unwrap();
            pending.count() == 0
        }
    })
    .await;
    assert_eq!(lax.diagnostics().unhandled, 1);
    assert_eq!(dead.diagnostics().unhandled, 1);
    assert_eq!(retry.diagnostics().unhandled, 2, "delivered twice");
    for bridge in [orders, dead, lax, retry] {
        assert!(bridge.shutdown().await.is_complete());
    }
}

#[tokio::test]
async fn starting_a_bridge_on_a_bus_without_its_outbound_side_is_an_error() {
    let bridge = Bridge::builder(RedisTransport::new(SHARED_URL), "orders")
        .durable::<Job>(unique("no-outbound"))
        .build()
        .unwrap();
    let other = Bridge::builder(RedisTransport::new(SHARED_URL), "orders")
        .durable::<Job>(unique("no-outbound"))
        .build()
        .unwrap();
    for bus in [EventBus::new(), support::bus_for(&other)] {
        let error = bridge.start(&bus).await.unwrap_err();
        assert!(
            error
                .to_string()
                .contains("build the bus with `.middleware(bridge.outbound())`"),
            "{error}"
        );
    }
    let bus = support::bus_for(&bridge);
    bridge.start(&bus).await.unwrap();
    assert!(bridge.shutdown().await.is_complete());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_bridge_without_shutdown_stops_it_consuming() {
    let stream = unique("dropped");
    let channel = unique("dropped");
    let (orders_bus, orders) = started(
        Bridge::builder(RedisTransport::new(SHARED_URL), "orders")
            .durable::<Job>(&stream)
            .broadcast::<Ping>(&channel),
    )
    .await;
    let (billing_bus, billing) = started(
        Bridge::builder(RedisTransport::new(SHARED_URL), "billing")
            .durable::<Job>(&stream)
            .broadcast::<Ping>(&channel),
    )
    .await;
    let jobs = count_jobs(&billing_bus);
    let pings = Arc::new(AtomicU64::new(0));
    let p = pings.clone();
    billing_bus
        .subscribe(move |_: &Ping| {
            p.fetch_add(1, Ordering::SeqCst);
        })
        .forever();
    assert!(orders_bus.publish(Job(1)).await.is_ok());
    wait_until("billing consumes", LIMIT, || {
        let jobs = jobs.clone();
        async move { jobs.load(Ordering::SeqCst) == 1 }
    })
    .await;

    let clone = billing.clone();
    drop(billing);
    assert!(orders_bus.publish(Job(2)).await.is_ok());
    wait_until("a clone keeps it running", LIMIT, || {
        let jobs = jobs.clone();
        async move { jobs.load(Ordering::SeqCst) == 2 }
    })
    .await;
    drop(clone);
    // The consumers notice within one blocking read (100 ms here).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(orders_bus.publish(Job(3)).await.is_ok());
    assert!(orders_bus.publish(Ping(3)).await.is_ok());
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        jobs.load(Ordering::SeqCst),
        2,
        "a dropped bridge consumes nothing"
    );
    assert_eq!(pings.load(Ordering::SeqCst), 0);
    // The job is still there for the service's next instance.
    let mut redis = connect(SHARED_URL).await;
    let groups: redis::streams::StreamInfoGroupsReply = redis.xinfo_groups(&stream).await.unwrap();
    let billing_group = groups.groups.iter().find(|g| g.name == "billing").unwrap();
    assert_eq!(billing_group.pending, 0);
    assert_eq!(billing_group.lag, Some(1), "job 3 waits unread");
    assert!(orders.shutdown().await.is_complete());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_failures_are_counted_by_cause() {
    #[derive(Event)]
    #[event(name = "lifecycle.local_only")]
    struct LocalOnly;

    // Encode: the type is not distributed.
    let mut server = PrivateRedis::start();
    let stream = "lifecycle:causes".to_owned();
    let (bus, bridge) = started(
        Bridge::builder(RedisTransport::new(server.url()), "orders")
            .durable::<Job>(&stream)
            .broadcast::<Ping>("lifecycle:causes:pings")
            .broadcast::<LocalOnly>("lifecycle:causes:local"),
    )
    .await;
    assert_eq!(bus.publish(LocalOnly).await.failures().len(), 1);
    assert_eq!(bridge.diagnostics().send_failed_encode, 1);

    // Server reply: the stream's key holds a string, so every XADD is refused (WRONGTYPE).
    let mut redis = connect(&server.url()).await;
    let _: () = redis.del(&stream).await.unwrap();
    let _: () = redis.set(&stream, "not a stream").await.unwrap();
    assert!(bus.publish(Job(1)).await.is_ok(), "queued");
    let b = bridge.clone();
    wait_until("the rejected job is given up", LIMIT, || {
        let b = b.clone();
        async move { b.diagnostics().send_failed_reply == 1 }
    })
    .await;
    let d = bridge.diagnostics();
    assert_eq!(d.send_retries, 4, "tried 5 times in all: {d:?}");
    assert_eq!(d.send_failed_connection, 0, "{d:?}");

    // Connection: broadcasts in a round trip that fails are lost, and counted as such.
    server.stop();
    let sent_before = bridge.diagnostics().sent;
    for n in 0..5 {
        assert!(bus.publish(Ping(n)).await.is_ok());
    }
    let b = bridge.clone();
    wait_until("the lost broadcasts are counted", LIMIT, || {
        let b = b.clone();
        async move { b.diagnostics().send_failed_connection == 5 }
    })
    .await;
    let d = bridge.diagnostics();
    assert_eq!(
        (d.sent, d.send_failed_reply, d.send_failed_encode),
        (sent_before, 1, 1)
    );
    let _ = bridge.shutdown().await;
}

#[test]
fn the_documented_counters_are_exactly_the_exported_ones() {
    let docs = include_str!("../docs/distributed.md");
    let mut documented: Vec<&str> = docs
        .lines()
        .skip_while(|l| !l.starts_with("<!-- counters -->"))
        .take_while(|l| !l.starts_with("<!-- /counters -->"))
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .collect();
    let mut exported: Vec<&str> = eventbus_core::bridge::DiagnosticsSnapshot::default()
        .counters()
        .map(|(name, _)| name)
        .collect();
    assert!(
        !documented.is_empty(),
        "docs/distributed.md has a counters table"
    );
    documented.sort();
    exported.sort();
    assert_eq!(documented, exported);
}
