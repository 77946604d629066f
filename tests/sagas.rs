//! Sagas through the public API, on the in-memory store: any arrival order, races between
//! tasks on one instance, duplicates (redelivered by the durable Redis bridge), timeouts on a
//! virtual clock, compensation, and events for instances that do not exist or have ended.

#[path = "support/fulfillment.rs"]
mod fulfillment;
#[path = "support/redis.rs"]
mod support;

use fulfillment::*;

use eventbus_core::bridge::Bridge;
use eventbus_core::redis::RedisTransport;
use eventbus_core::saga::{
    Commit, Committed, Instance, MemoryStore, SagaStore, Sagas, Status, StoreError,
};
use eventbus_core::{EventBus, FailureKind};
use redis::AsyncCommands;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{connect, first_cloudevent, unique, wait_until, SHARED_URL};

type Log<T> = Arc<Mutex<Vec<T>>>;
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A bus running the saga, and what it published.
fn bus() -> (
    EventBus,
    Sagas,
    Log<FulfillmentStarted>,
    Log<ReleaseInventory>,
) {
    let bus = EventBus::new();
    let sagas = Sagas::builder().saga::<Fulfillment>().start(&bus).unwrap();
    let (started, released): (Log<_>, Log<_>) = Default::default();
    let s = started.clone();
    bus.subscribe(move |e: &FulfillmentStarted| s.lock().unwrap().push(e.clone()))
        .forever();
    let r = released.clone();
    bus.subscribe(move |e: &ReleaseInventory| r.lock().unwrap().push(e.clone()))
        .forever();
    (bus, sagas, started, released)
}

async fn instance(sagas: &Sagas, key: &str) -> Option<(Fulfillment, Status)> {
    let found = sagas.store().load("fulfillment", key).await.unwrap()?;
    Some((serde_json::from_value(found.state).unwrap(), found.status))
}

#[tokio::test]
async fn both_events_in_either_order_start_fulfillment_once() {
    let (bus, sagas, started, _) = bus();
    assert!(bus.publish(payment(1)).await.is_ok());
    assert!(bus.publish(reservation(1)).await.is_ok());
    assert!(bus.publish(reservation(2)).await.is_ok());
    assert!(bus.publish(payment(2)).await.is_ok());

    let started = started.lock().unwrap().clone();
    assert_eq!(
        started,
        [
            FulfillmentStarted {
                order_id: "A-1".into(),
                cents: 101
            },
            FulfillmentStarted {
                order_id: "A-2".into(),
                cents: 102
            },
        ]
    );
    for key in ["A-1", "A-2"] {
        let (state, status) = instance(&sagas, key).await.unwrap();
        assert_eq!(status, Status::Completed);
        assert!(state.reserved && state.cents.is_some());
    }
    let stats = sagas.stats("fulfillment").unwrap();
    assert_eq!((stats.started, stats.steps, stats.completed), (2, 4, 2));
}

#[tokio::test]
async fn an_ended_saga_ignores_later_events_and_is_never_restarted() {
    let (bus, sagas, started, _) = bus();
    assert!(bus.publish(payment(1)).await.is_ok());
    assert!(bus.publish(reservation(1)).await.is_ok());
    // Start events again, for the completed instance: ignored, counted, not restarted.
    assert!(bus.publish(payment(1)).await.is_ok());
    assert!(bus.publish(reservation(1)).await.is_ok());
    assert_eq!(started.lock().unwrap().len(), 1);
    let stats = sagas.stats("fulfillment").unwrap();
    assert_eq!((stats.started, stats.after_end), (1, 2));
    assert_eq!(instance(&sagas, "A-1").await.unwrap().1, Status::Completed);
}

#[tokio::test]
async fn an_event_that_cannot_start_an_instance_is_ignored_and_counted() {
    let (bus, sagas, _, released) = bus();
    let report = bus
        .publish(PaymentTimedOut {
            order_id: "nobody".into(),
        })
        .await;
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(sagas.stats("fulfillment").unwrap().unmatched, 1);
    assert!(instance(&sagas, "nobody").await.is_none());
    assert!(released.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_failing_step_commits_nothing_and_fails_like_a_handler() {
    let (bus, sagas, started, _) = bus();
    let report = bus
        .publish(PaymentProcessed {
            order_id: "A-0".into(),
            cents: 0,
        })
        .await;
    assert_eq!(report.failures().len(), 1, "{report:?}");
    assert_eq!(
        report.failures()[0].kind(),
        &FailureKind::Error("a payment of 0 cents".into())
    );
    assert_eq!(report.failures()[0].handler(), "saga fulfillment::paid");
    assert!(instance(&sagas, "A-0").await.is_none());
    // The instance is still free to start.
    assert!(bus.publish(reservation(0)).await.is_ok());
    assert!(bus
        .publish(PaymentProcessed {
            order_id: "A-0".into(),
            cents: 5
        })
        .await
        .is_ok());
    assert_eq!(started.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_timeout_compensates_a_saga_that_waited_too_long() {
    let (bus, sagas, started, released) = bus();
    assert!(bus.publish(reservation(1)).await.is_ok());
    tokio::time::sleep(PAYMENT_WINDOW - Duration::from_secs(1)).await;
    assert!(released.lock().unwrap().is_empty(), "not before its time");
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_for(|| !released.lock().unwrap().is_empty()).await;
    assert_eq!(
        *released.lock().unwrap(),
        [ReleaseInventory {
            order_id: "A-1".into()
        }]
    );
    assert_eq!(
        instance(&sagas, "A-1").await.unwrap().1,
        Status::Compensated("no payment within 30 minutes".into())
    );
    // A late payment finds the saga ended.
    assert!(bus.publish(payment(1)).await.is_ok());
    assert!(started.lock().unwrap().is_empty());
    let stats = sagas.stats("fulfillment").unwrap();
    assert_eq!(
        (stats.timeouts_fired, stats.compensated, stats.after_end),
        (1, 1, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_saga_that_completes_in_time_never_sees_its_timeout() {
    let (bus, sagas, started, released) = bus();
    assert!(bus.publish(reservation(1)).await.is_ok());
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(bus.publish(payment(1)).await.is_ok());
    tokio::time::sleep(PAYMENT_WINDOW * 2).await;
    assert_eq!(started.lock().unwrap().len(), 1);
    assert!(released.lock().unwrap().is_empty());
    let stats = sagas.stats("fulfillment").unwrap();
    assert_eq!(stats.timeouts_fired, 0);
    assert_eq!(instance(&sagas, "A-1").await.unwrap().1, Status::Completed);
}

/// Lets spawned work run (time is paused in these tests, so this does not wait for real).
async fn wait_for(done: impl Fn() -> bool) {
    for _ in 0..1_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("never happened");
}

/// A small deterministic shuffle (xorshift), so that each run races the same way.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

/// The in-memory store, yielding between a load and the commit that follows it: two steps on
/// one instance then interleave there, the window where an update could be lost.
struct Interleaving(MemoryStore);

impl SagaStore for Interleaving {
    fn load<'a>(
        &'a self,
        saga: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Instance>, StoreError>> {
        Box::pin(async move {
            let found = self.0.load(saga, key).await;
            tokio::task::yield_now().await;
            found
        })
    }

    fn commit<'a>(
        &'a self,
        saga: &'a str,
        key: &'a str,
        commit: Commit,
    ) -> BoxFuture<'a, Result<Committed, StoreError>> {
        self.0.commit(saga, key, commit)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tasks_racing_on_1000_sagas_lose_no_update() {
    let bus = EventBus::new();
    let sagas = Sagas::builder()
        .store(Interleaving(MemoryStore::new()))
        .saga::<Fulfillment>()
        .start(&bus)
        .unwrap();
    let started: Log<FulfillmentStarted> = Log::default();
    let s = started.clone();
    bus.subscribe(move |e: &FulfillmentStarted| s.lock().unwrap().push(e.clone()))
        .forever();
    const SAGAS: u64 = 1_000;
    // A random order of instances; each instance's two events are published at once, from
    // two tasks on two threads, and either may come first.
    let mut orders: Vec<u64> = (0..SAGAS).collect();
    shuffle(&mut orders, 0x9E37_79B9_7F4A_7C15);
    for order in orders {
        let (a, b) = (bus.clone(), bus.clone());
        let pay = tokio::spawn(async move { a.publish(payment(order)).await });
        let reserve = tokio::spawn(async move { b.publish(reservation(order)).await });
        assert!(pay.await.unwrap().is_ok());
        assert!(reserve.await.unwrap().is_ok());
    }

    let mut per_order: HashMap<String, u32> = HashMap::new();
    for e in started.lock().unwrap().iter() {
        *per_order.entry(e.order_id.clone()).or_default() += 1;
    }
    assert_eq!(per_order.len(), SAGAS as usize, "every saga finished");
    assert!(per_order.values().all(|&n| n == 1), "each exactly once");
    for order in 0..SAGAS {
        let (state, status) = instance(&sagas, &format!("A-{order}")).await.unwrap();
        assert_eq!(status, Status::Completed);
        assert_eq!(
            state,
            Fulfillment {
                cents: Some(100 + order),
                reserved: true
            }
        );
    }
    let stats = sagas.stats("fulfillment").unwrap();
    assert_eq!((stats.started, stats.steps), (SAGAS, 2 * SAGAS));
    println!(
        "conflicts resolved by running a step again: {}",
        stats.conflicts
    );
    assert!(
        stats.conflicts > 0,
        "the two tasks never raced on an instance"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_redelivered_by_the_durable_bridge_changes_nothing_the_second_time() {
    let stream = unique("saga-redelivery");
    // The bridge's own duplicate filter is off: the saga alone must hold the line.
    let bridge = Bridge::builder(RedisTransport::new(SHARED_URL), "fulfillment")
        .durable::<PaymentProcessed>(&stream)
        .dedup_window(0)
        .block(Duration::from_millis(100))
        .build()
        .unwrap();
    let bus = support::bus_for(&bridge);
    let sagas = Sagas::builder().saga::<Fulfillment>().start(&bus).unwrap();
    bridge.start(&bus).await.unwrap();

    // Another service's payment, written to the stream twice (a redelivery).
    let sender = Bridge::builder(RedisTransport::new(SHARED_URL), "payments")
        .durable::<PaymentProcessed>(&stream)
        .build()
        .unwrap();
    let payments = support::bus_for(&sender);
    sender.start(&payments).await.unwrap();
    assert!(payments.publish(payment(7)).await.is_ok());
    let payload = first_cloudevent(&stream, LIMIT).await;
    let mut redis = connect(SHARED_URL).await;
    let _: String = redis.xadd(&stream, "*", &[("ce", payload)]).await.unwrap();

    wait_until("both deliveries reached the saga", LIMIT, || async {
        let stats = sagas.stats("fulfillment").unwrap();
        stats.steps + stats.duplicates == 2
    })
    .await;
    let stats = sagas.stats("fulfillment").unwrap();
    assert_eq!((stats.started, stats.steps, stats.duplicates), (1, 1, 1));
    let found = sagas
        .store()
        .load("fulfillment", "A-7")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.version, found.processed.len()), (1, 1));
    assert!(sender.shutdown().await.is_complete());
    assert!(bridge.shutdown().await.is_complete());
}

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn a_saga_added_twice_is_refused_by_name() {
    let bus = EventBus::new();
    let error = Sagas::builder()
        .saga::<Fulfillment>()
        .saga::<Fulfillment>()
        .start(&bus)
        .unwrap_err();
    assert_eq!(
        error.problems(),
        ["saga `fulfillment` is added twice (or two sagas share the name)"]
    );
}

#[tokio::test]
async fn registered_sagas_are_found_at_link_time() {
    let bus = EventBus::new();
    let sagas = Sagas::builder().with_registered().start(&bus).unwrap();
    assert_eq!(sagas.names(), ["Count", "fulfillment"]);
    assert!(bus.publish(payment(3)).await.is_ok());
    assert_eq!(sagas.stats("fulfillment").unwrap().started, 1);
}

mod harness {
    use super::fulfillment::*;
    use eventbus_core::saga::testing::SagaTest;
    use eventbus_core::saga::{SagaContext, Status};
    use eventbus_core::{saga, Event};
    use serde::{Deserialize, Serialize};

    #[tokio::test(start_paused = true)]
    async fn given_events_then_state_status_and_published_on_a_virtual_clock() {
        let test = SagaTest::<Fulfillment>::new();
        test.given(reservation(1)).await;
        assert_eq!(
            test.state("A-1").await,
            Some(Fulfillment {
                cents: None,
                reserved: true
            })
        );
        test.advance(PAYMENT_WINDOW).await;
        assert_eq!(
            test.status("A-1").await,
            Some(Status::Compensated("no payment within 30 minutes".into()))
        );
        assert_eq!(
            test.published::<ReleaseInventory>(),
            [ReleaseInventory {
                order_id: "A-1".into()
            }]
        );
        assert!(test.published::<FulfillmentStarted>().is_empty());
        assert_eq!(test.sagas().stats("fulfillment").unwrap().timeouts_fired, 1);
    }

    #[derive(Event, Clone, Debug)]
    struct ShopEvent {
        order_id: String,
    }

    #[derive(Event, Clone, Debug)]
    #[event(extends = ShopEvent)]
    struct Placed {
        #[event(base)]
        base: ShopEvent,
    }

    #[derive(Default, Debug, PartialEq, Serialize, Deserialize)]
    struct Count {
        placed: u32,
    }

    #[saga(key = String)]
    impl Count {
        // The key in the base event: a path of fields.
        #[start(by = base.order_id)]
        fn placed(&mut self, _: &Placed, _: &mut SagaContext) {
            self.placed += 1;
        }
    }

    #[tokio::test]
    async fn a_step_correlates_by_a_field_of_a_base_event() {
        let test = SagaTest::<Count>::new();
        let placed = |id: &str| Placed {
            base: ShopEvent {
                order_id: id.into(),
            },
        };
        test.given(placed("A-1")).await;
        test.given(placed("A-1")).await;
        test.given(placed("B-2")).await;
        assert_eq!(test.state("A-1").await, Some(Count { placed: 2 }));
        assert_eq!(test.state("B-2").await, Some(Count { placed: 1 }));
    }
}
