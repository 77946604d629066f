//! Sagas on PostgreSQL (feature `postgres`) against the server on 127.0.0.1:5432 (the test
//! script starts it): the store's contract, shared with the in-memory store; two consumers (two
//! buses with a store each) racing on 1,000 instances; state that outlives its process. Each
//! test works in a schema of its own and drops it at the end.

#[path = "support/fulfillment.rs"]
mod fulfillment;

use eventbus_core::saga::{
    Commit, Committed, MemoryStore, PostgresStore, SagaStore, Sagas, Status,
};
use eventbus_core::{EventBus, EventId};
use fulfillment::*;
use sqlx::postgres::PgConnectOptions;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

const URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A schema of this test's own, with the store's tables in it.
struct Schema {
    name: String,
    admin: PostgresStore,
}

impl Schema {
    async fn new() -> Self {
        let admin = PostgresStore::connect(URL)
            .await
            .expect("PostgreSQL answers on 127.0.0.1:5432 (the test script starts it)");
        let name = format!("eventbus_test_{}", EventId::new().as_u128());
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(admin.pool())
            .await
            .unwrap();
        let schema = Schema { name, admin };
        schema.store().await.migrate().await.unwrap();
        schema
    }

    /// A store of its own (its own pool: another consumer) on this schema.
    async fn store(&self) -> PostgresStore {
        let options = PgConnectOptions::from_str(URL)
            .unwrap()
            .options([("search_path", self.name.as_str())]);
        PostgresStore::connect_with(options).await.unwrap()
    }

    async fn drop(self) {
        sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.name))
            .execute(self.admin.pool())
            .await
            .unwrap();
    }
}

/// What every store promises: a first commit creates, a second create conflicts, an update
/// writes only over the version it read, and what is written reads back.
async fn store_contract(store: &dyn SagaStore) {
    let id = |n: u128| EventId::from_u128(n);
    let commit = |expected, state, status, n| Commit::new(expected, state, status, id(n));
    assert_eq!(store.load("s", "k").await.unwrap(), None);
    let first = commit(None, serde_json::json!({"n": 1}), Status::Running, 1);
    assert_eq!(
        store.commit("s", "k", first.clone()).await.unwrap(),
        Committed::Written(1)
    );
    assert_eq!(
        store.commit("s", "k", first).await.unwrap(),
        Committed::Conflict
    );
    let stale = commit(Some(7), serde_json::json!({"n": 9}), Status::Running, 2);
    assert_eq!(
        store.commit("s", "k", stale).await.unwrap(),
        Committed::Conflict
    );
    let end = Status::Compensated("no payment".into());
    let second = commit(Some(1), serde_json::json!({"n": 2}), end.clone(), 2);
    assert_eq!(
        store.commit("s", "k", second).await.unwrap(),
        Committed::Written(2)
    );
    let found = store.load("s", "k").await.unwrap().unwrap();
    assert_eq!(found.state, serde_json::json!({"n": 2}));
    assert_eq!((found.version, found.status), (2, end));
    assert_eq!(found.processed, [id(1), id(2)]);
    // Another key, another saga: other instances.
    assert_eq!(store.load("s", "other").await.unwrap(), None);
    assert_eq!(store.load("t", "k").await.unwrap(), None);
}

#[tokio::test]
async fn the_memory_store_keeps_the_store_contract() {
    store_contract(&MemoryStore::new()).await;
}

#[tokio::test]
async fn the_postgres_store_keeps_the_store_contract() {
    let schema = Schema::new().await;
    store_contract(&schema.store().await).await;
    schema.drop().await;
}

type Log = Arc<Mutex<Vec<FulfillmentStarted>>>;

/// A consumer: a bus with the saga on a store of its own, over the shared schema.
async fn consumer(schema: &Schema, started: &Log) -> (EventBus, Sagas) {
    let bus = EventBus::new();
    let sagas = Sagas::builder()
        .store(schema.store().await)
        .saga::<Fulfillment>()
        .start(&bus)
        .unwrap();
    let s = started.clone();
    bus.subscribe(move |e: &FulfillmentStarted| s.lock().unwrap().push(e.clone()))
        .forever();
    (bus, sagas)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_racing_on_1000_sagas_lose_no_update() {
    let schema = Schema::new().await;
    let started = Log::default();
    let (a, sagas_a) = consumer(&schema, &started).await;
    let (b, sagas_b) = consumer(&schema, &started).await;
    const SAGAS: u64 = 1_000;
    // Each instance's two events go to the two consumers at once, either may come first;
    // 32 instances are in flight together.
    let orders: Vec<u64> = (0..SAGAS).collect();
    for chunk in orders.chunks(32) {
        let mut tasks = Vec::new();
        for &order in chunk {
            let (a, b) = (a.clone(), b.clone());
            tasks.push(tokio::spawn(async move { a.publish(payment(order)).await }));
            tasks.push(tokio::spawn(
                async move { b.publish(reservation(order)).await },
            ));
        }
        for task in tasks {
            let report = task.await.unwrap();
            assert!(report.is_ok(), "{report:?}");
        }
    }

    let mut per_order: HashMap<String, u32> = HashMap::new();
    for e in started.lock().unwrap().iter() {
        *per_order.entry(e.order_id.clone()).or_default() += 1;
    }
    assert_eq!(per_order.len(), SAGAS as usize, "every saga finished");
    assert!(per_order.values().all(|&n| n == 1), "each exactly once");
    let store = schema.store().await;
    for order in 0..SAGAS {
        let found = store
            .load("fulfillment", &format!("A-{order}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((found.version, found.status), (2, Status::Completed));
        let state: Fulfillment = serde_json::from_value(found.state).unwrap();
        assert_eq!(
            state,
            Fulfillment {
                cents: Some(100 + order),
                reserved: true
            }
        );
    }
    let (stats_a, stats_b) = (
        sagas_a.stats("fulfillment").unwrap(),
        sagas_b.stats("fulfillment").unwrap(),
    );
    assert_eq!(stats_a.steps + stats_b.steps, 2 * SAGAS);
    assert_eq!(stats_a.started + stats_b.started, SAGAS);
    let conflicts = stats_a.conflicts + stats_b.conflicts;
    println!("conflicts resolved by running a step again: {conflicts}");
    assert!(
        conflicts > 0,
        "the two consumers never raced on an instance"
    );
    schema.drop().await;
}

#[tokio::test]
async fn an_instance_outlives_the_process_that_started_it() {
    let schema = Schema::new().await;
    let started = Log::default();
    {
        let (bus, _sagas) = consumer(&schema, &started).await;
        assert!(bus.publish(payment(1)).await.is_ok());
    } // this "process" is gone
    let (bus, sagas) = consumer(&schema, &started).await;
    assert!(bus.publish(reservation(1)).await.is_ok());
    assert_eq!(
        *started.lock().unwrap(),
        [FulfillmentStarted {
            order_id: "A-1".into(),
            cents: 101
        }]
    );
    let stats = sagas.stats("fulfillment").unwrap();
    assert_eq!(
        (stats.started, stats.completed),
        (0, 1),
        "continued, not restarted"
    );
    schema.drop().await;
}
