//! The transport conformance suite: one set of behaviours, run by the same code against every
//! transport (Redis and RabbitMQ), the way Watermill's universal tests are. A transport that
//! plugs into the bridge passes all of it.
//!
//! Every case uses topics of its own (so queues of its own), so cases run in parallel on the
//! shared brokers, and removes them at the end; the cases that stop a broker start a private
//! one.

#[path = "support/brokers.rs"]
mod brokers;
#[path = "support/redis.rs"]
mod redis_support;

use brokers::Broker;
use eventbus_core::bridge::{Bridge, BridgeBuilder, Transport};
use eventbus_core::{Event, EventBus, EventId};
use redis_support::wait_until;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(name = "conformance.domain", distributed)]
struct DomainEvent {
    key: String,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(extends = DomainEvent, name = "conformance.job", distributed)]
struct Job {
    #[event(base)]
    base: DomainEvent,
    n: u64,
    /// The receiving handler fails on it, every time.
    poison: bool,
}

fn job(n: u64) -> Job {
    Job {
        base: DomainEvent {
            key: format!("k{}", n % 4),
        },
        n,
        poison: false,
    }
}

fn unique(what: &str) -> String {
    format!("conformance.{what}.{}", EventId::new())
}

/// What a service received: job numbers in arrival order, per instance.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(u64, String)>>>);

impl Received {
    fn numbers(&self) -> Vec<u64> {
        self.0.lock().unwrap().iter().map(|(n, _)| *n).collect()
    }

    fn distinct(&self) -> BTreeSet<u64> {
        self.numbers().into_iter().collect()
    }
}

/// A started bus of `service` bridged by `builder`, whose `Job` handler records jobs (failing
/// on poison ones, after `delay`). The bridges route `DomainEvent`: jobs reach it through
/// their lineage.
async fn service<T: Transport>(
    builder: BridgeBuilder<T>,
    received: &Received,
    delay: Duration,
) -> (EventBus, Bridge) {
    let bridge = builder.build().unwrap();
    let bus = redis_support::bus_for(&bridge);
    let log = received.clone();
    let instance = bridge.instance().to_owned();
    bus.subscribe(move |job: &Job| {
        let job = job.clone();
        let log = log.clone();
        let instance = instance.clone();
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if job.poison {
                return Err(format!("job {} is poison", job.n));
            }
            log.0.lock().unwrap().push((job.n, instance));
            Ok(())
        }
    })
    .forever();
    bridge.start(&bus).await.unwrap();
    (bus, bridge)
}

/// A started bus that only sends.
/// The receiving service of the durable cases: `billing`, routing `DomainEvent` on `topic`.
async fn billing<B: Broker>(
    broker: &B,
    topic: &str,
    received: &Received,
    delay: Duration,
) -> (EventBus, Bridge) {
    let builder = broker.builder("billing").durable::<DomainEvent>(topic);
    service(builder, received, delay).await
}

async fn sender<T: Transport>(builder: BridgeBuilder<T>) -> (EventBus, Bridge) {
    let bridge = builder.build().unwrap();
    let bus = redis_support::bus_for(&bridge);
    bridge.start(&bus).await.unwrap();
    (bus, bridge)
}

async fn send(bus: &EventBus, jobs: impl IntoIterator<Item = u64>) {
    for n in jobs {
        let _sent = bus.publish(job(n)).await.into_result().unwrap();
    }
}

async fn until_received(what: &str, received: &Received, expected: usize) {
    wait_until(what, LIMIT, || {
        let got = received.distinct().len();
        async move { got >= expected }
    })
    .await;
}

/// Durable: every job reaches the other service once, in order (one consumer), routed by the
/// base type: the receiver subscribes to `DomainEvent` and gets `Job`.
async fn durable_round_trip_by_lineage<B: Broker>(broker: &B) {
    let topic = unique("durable");
    let received = Received::default();
    let (_rx_bus, rx) = billing(broker, &topic, &received, Duration::ZERO).await;
    let (tx_bus, tx) = sender(broker.sends(broker.builder("orders").durable::<Job>(&topic))).await;
    send(&tx_bus, 0..200).await;
    until_received("200 jobs arrive", &received, 200).await;
    assert_eq!(received.numbers(), (0..200).collect::<Vec<_>>(), "in order");
    assert!(tx.shutdown().await.is_complete());
    let _ = rx.shutdown().await;
    assert_eq!(rx.diagnostics().dispatched, 200);
    broker.remove(&topic, &["billing", "orders"]).await;
}

/// Broadcast: every instance of every subscribed service gets every job; the sender skips
/// its own.
async fn broadcast_reaches_every_instance<B: Broker>(broker: &B) {
    let topic = unique("broadcast");
    let service_name = "audit";
    let (a, b, own) = (
        Received::default(),
        Received::default(),
        Received::default(),
    );
    let (_a_bus, a_bridge) = service(
        broker
            .builder(service_name)
            .broadcast::<DomainEvent>(&topic),
        &a,
        Duration::ZERO,
    )
    .await;
    let (_b_bus, b_bridge) = service(
        broker
            .builder(service_name)
            .broadcast::<DomainEvent>(&topic),
        &b,
        Duration::ZERO,
    )
    .await;
    let (tx_bus, tx) = service(
        broker.builder("orders").broadcast::<Job>(&topic),
        &own,
        Duration::ZERO,
    )
    .await;
    send(&tx_bus, 0..100).await;
    until_received("instance a gets all", &a, 100).await;
    until_received("instance b gets all", &b, 100).await;
    assert_eq!(
        own.numbers().len(),
        100,
        "the sender handled its own once, locally"
    );
    assert!(tx.shutdown().await.is_complete());
    assert_eq!(
        tx.diagnostics().dispatched,
        0,
        "its own broadcasts are skipped"
    );
    let _ = a_bridge.shutdown().await;
    let _ = b_bridge.shutdown().await;
    broker.remove(&topic, &[]).await;
}

/// Durable: two instances of one service share the work; together they get every job, and
/// another service gets every job too.
async fn competing_consumers_share_the_work<B: Broker>(broker: &B) {
    let topic = unique("competing");
    let workers = "workers";
    let shared = Received::default();
    let other = Received::default();
    let (_w1, w1) = service(
        broker.builder(workers).durable::<DomainEvent>(&topic),
        &shared,
        Duration::from_millis(2),
    )
    .await;
    let (_w2, w2) = service(
        broker.builder(workers).durable::<DomainEvent>(&topic),
        &shared,
        Duration::from_millis(2),
    )
    .await;
    let (_o, o) = service(
        broker.builder("audit").durable::<DomainEvent>(&topic),
        &other,
        Duration::ZERO,
    )
    .await;
    let (tx_bus, tx) = sender(broker.sends(broker.builder("orders").durable::<Job>(&topic))).await;
    send(&tx_bus, 0..300).await;
    until_received("the workers share 300 jobs", &shared, 300).await;
    until_received("the other service gets 300 jobs", &other, 300).await;
    let by_instance: BTreeMap<String, usize> =
        shared
            .0
            .lock()
            .unwrap()
            .iter()
            .fold(BTreeMap::new(), |mut counts, (_, instance)| {
                *counts.entry(instance.clone()).or_default() += 1;
                counts
            });
    assert_eq!(
        by_instance.len(),
        2,
        "both instances worked: {by_instance:?}"
    );
    assert!(tx.shutdown().await.is_complete());
    for bridge in [w1, w2, o] {
        let _ = bridge.shutdown().await;
    }
    broker.remove(&topic, &["workers", "audit", "orders"]).await;
}

/// Durable: a malformed message, an event of a type nobody knows and a job whose handler
/// always fails are each dead-lettered with their reason; the good jobs around them are
/// handled.
async fn poison_and_unknown_are_dead_lettered<B: Broker>(broker: &B) {
    let topic = unique("poison");
    let service_name = "billing";
    let received = Received::default();
    let (_rx_bus, rx) = service(
        broker
            .builder(service_name)
            .durable::<DomainEvent>(&topic)
            .max_deliveries(2),
        &received,
        Duration::ZERO,
    )
    .await;
    let (tx_bus, tx) = sender(broker.sends(broker.builder("orders").durable::<Job>(&topic))).await;
    send(&tx_bus, [1]).await;
    broker
        .inject(&topic, DomainEvent::TYPE, b"{ this is not json")
        .await;
    let unknown = serde_json::json!({
        "specversion": "1.0", "id": "u-1", "source": "elsewhere",
        "type": "conformance.nobody", "data": {}
    });
    broker
        .inject(&topic, DomainEvent::TYPE, unknown.to_string().as_bytes())
        .await;
    let mut poison = job(2);
    poison.poison = true;
    let _sent = tx_bus.publish(poison).await.into_result().unwrap();
    send(&tx_bus, [3]).await;
    until_received("the good jobs arrive", &received, 2).await;
    wait_until("three dead letters", LIMIT, || async {
        broker.dead_letters(service_name, &topic).await >= 3
    })
    .await;
    assert_eq!(received.distinct(), BTreeSet::from([1, 3]));
    let counters = rx.diagnostics();
    assert_eq!(counters.malformed, 1);
    assert_eq!(counters.unknown_type, 1);
    assert_eq!(counters.dead_lettered, 3);
    assert!(counters.handler_failures >= 2, "{counters:?}");
    let _ = tx.shutdown().await;
    let _ = rx.shutdown().await;
    assert_eq!(broker.dead_letters(service_name, &topic).await, 3);
    broker.remove(&topic, &["billing", "orders"]).await;
}

/// Durable: a consumer shut down while its handlers are busy loses nothing. What it finished
/// is acknowledged; what it did not is delivered again to the next instance of the service.
async fn close_in_flight_loses_nothing<B: Broker>(broker: &B) {
    let topic = unique("close");
    let service_name = "billing";
    let received = Received::default();
    let (_first_bus, first) = service(
        broker.builder(service_name).durable::<DomainEvent>(&topic),
        &received,
        Duration::from_millis(5),
    )
    .await;
    let (tx_bus, tx) = sender(broker.sends(broker.builder("orders").durable::<Job>(&topic))).await;
    send(&tx_bus, 0..400).await;
    until_received("the first instance is under way", &received, 20).await;
    let _ = first.shutdown().await;
    let (_second_bus, second) = service(
        broker.builder(service_name).durable::<DomainEvent>(&topic),
        &received,
        Duration::ZERO,
    )
    .await;
    until_received("all 400 jobs, across both instances", &received, 400).await;
    assert!(tx.shutdown().await.is_complete());
    let _ = second.shutdown().await;
    broker.remove(&topic, &["billing", "orders"]).await;
}

/// Durable: a slow consumer does not slow the sender down (the broker holds the backlog), and
/// it catches up with everything.
async fn slow_consumer_catches_up<B: Broker>(broker: &B) {
    let topic = unique("slow");
    let received = Received::default();
    let (_rx_bus, rx) = billing(broker, &topic, &received, Duration::from_millis(1)).await;
    let (tx_bus, tx) = sender(broker.sends(broker.builder("orders").durable::<Job>(&topic))).await;
    let started = std::time::Instant::now();
    send(&tx_bus, 0..1000).await;
    let sending = started.elapsed();
    until_received("the slow consumer gets 1000 jobs", &received, 1000).await;
    let consuming = started.elapsed();
    assert!(
        sending < consuming,
        "publishing does not wait for the consumer ({sending:?} vs {consuming:?})"
    );
    assert!(tx.shutdown().await.is_complete());
    let _ = rx.shutdown().await;
    broker.remove(&topic, &["billing", "orders"]).await;
}

/// A route that only sends: the producer's events reach the consumer, and the producer,
/// which never subscribed to the topic, receives nothing from it.
async fn send_only_routes_do_not_receive<B: Broker>(broker: &B) {
    let topic = unique("send-only");
    let (at_producer, at_consumer) = (Received::default(), Received::default());
    let (producer_bus, producer) = service(
        broker.sends(broker.builder("producer").send_durable::<Job>(&topic)),
        &at_producer,
        Duration::ZERO,
    )
    .await;
    let (consumer_bus, consumer) = service(
        broker.builder("consumer").durable::<DomainEvent>(&topic),
        &at_consumer,
        Duration::ZERO,
    )
    .await;
    send(&producer_bus, 0..10).await; // handled locally too: 10 at the producer
    send(&consumer_bus, 100..110).await; // handled locally, sent, not received by the producer
    until_received("the consumer gets the producer's 10", &at_consumer, 20).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(at_producer.distinct(), (0..10).collect());
    assert!(producer.shutdown().await.is_complete());
    assert!(consumer.shutdown().await.is_complete());
    assert_eq!(producer.diagnostics().received, 0);
    broker.remove(&topic, &["producer", "consumer"]).await;
}

/// Durable: what is sent to a topic before any service subscribed is kept by the broker
/// (Redis: in the stream, for a group that starts at its beginning) or counted as lost
/// (RabbitMQ: returned, `send_unroutable`), never lost in silence; once a service subscribed,
/// it gets what follows.
async fn sent_before_any_subscriber_is_kept_or_counted<B: Broker>(broker: &B) {
    let topic = unique("unsubscribed");
    let (tx_bus, tx) =
        sender(broker.sends(broker.builder("orders").send_durable::<Job>(&topic))).await;
    send(&tx_bus, 0..5).await;
    let accounted = |tx: &Bridge| {
        let d = tx.diagnostics();
        d.sent + d.send_unroutable
    };
    wait_until("the 5 early jobs are accounted for", LIMIT, || {
        let done = accounted(&tx) == 5;
        async move { done }
    })
    .await;
    let early = tx.diagnostics();
    if B::KEEPS_UNSUBSCRIBED {
        assert_eq!((early.sent, early.send_unroutable), (5, 0));
    } else {
        assert_eq!((early.sent, early.send_unroutable), (0, 5));
    }

    let received = Received::default();
    let (_rx_bus, rx) = billing(broker, &topic, &received, Duration::ZERO).await;
    send(&tx_bus, 5..10).await;
    // The suite's Redis groups start at the beginning of their stream: the kept jobs arrive.
    let expected: BTreeSet<u64> = if B::KEEPS_UNSUBSCRIBED {
        (0..10).collect()
    } else {
        (5..10).collect()
    };
    until_received(
        "the jobs sent after the subscription",
        &received,
        expected.len(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(received.distinct(), expected);
    assert!(tx.shutdown().await.is_complete());
    assert!(rx.shutdown().await.is_complete());
    let late = tx.diagnostics();
    assert_eq!(late.sent - early.sent, 5);
    assert_eq!(late.send_unroutable, early.send_unroutable);
    broker.remove(&topic, &["orders", "billing"]).await;
}

/// Durable: 10 000 jobs with the broker killed (`kill -9`) and restarted twice in the middle:
/// every job arrives.
async fn crashes_lose_nothing<B: Broker>(broker: &mut B) {
    let topic = unique("crashes");
    let received = Received::default();
    let (_rx_bus, rx) = billing(broker, &topic, &received, Duration::ZERO).await;
    let (tx_bus, tx) = sender(broker.sends(broker.builder("orders").durable::<Job>(&topic))).await;
    // Sending goes on while the broker is down (the writer retries), paced so that both
    // crashes fall in the middle of the traffic.
    let sending = tokio::spawn({
        let bus = tx_bus.clone();
        async move {
            for chunk in 0..200u64 {
                send(&bus, chunk * 50..(chunk + 1) * 50).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        // A write in flight at the kill may be lost by the broker before it answered; the
        // writer does not count it as sent, and writes it again.
        tokio::task::block_in_place(|| broker.crash_and_restart());
    }
    sending.await.unwrap();
    until_received("10 000 jobs across two crashes", &received, 10_000).await;
    let report = tx.shutdown().await;
    assert!(report.is_complete(), "unsent: {}", report.unsent().len());
    let _ = rx.shutdown().await;
    // The crashes happened (the broker helper waits for each death and start); the bridges
    // noticed (a reconnection between two reads of a fast broker may go unnoticed).
    let errors = rx.diagnostics().connection_errors + tx.diagnostics().connection_errors;
    assert!(errors >= 1, "the bridges saw the crashes");
    broker.remove(&topic, &["billing", "orders"]).await;
}

macro_rules! conformance {
    ($transport:ident, $shared:expr, $private:expr) => {
        mod $transport {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn durable_round_trip_by_lineage() {
                super::durable_round_trip_by_lineage(&$shared).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn broadcast_reaches_every_instance() {
                super::broadcast_reaches_every_instance(&$shared).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn competing_consumers_share_the_work() {
                super::competing_consumers_share_the_work(&$shared).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn poison_and_unknown_are_dead_lettered() {
                super::poison_and_unknown_are_dead_lettered(&$shared).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn close_in_flight_loses_nothing() {
                super::close_in_flight_loses_nothing(&$shared).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn slow_consumer_catches_up() {
                super::slow_consumer_catches_up(&$shared).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn send_only_routes_do_not_receive() {
                super::send_only_routes_do_not_receive(&$shared).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sent_before_any_subscriber_is_kept_or_counted() {
                super::sent_before_any_subscriber_is_kept_or_counted(&$shared).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn crashes_lose_nothing() {
                super::crashes_lose_nothing(&mut $private).await;
            }
        }
    };
}

conformance!(redis, brokers::Redis::shared(), brokers::Redis::private());
// The same suite with every durable sender packing events into shared entries.
conformance!(
    redis_packed,
    brokers::Redis::shared().packed(16),
    brokers::Redis::private().packed(16)
);
conformance!(
    rabbitmq,
    brokers::Rabbit::shared(),
    brokers::Rabbit::private()
);
