//! Sagas on PostgreSQL (feature `postgres`) against the server on 127.0.0.1:5432 (the test
//! script starts it): the store's contract, shared with the in-memory store; two consumers (two
//! buses with a store each) racing on 1,000 instances; state that outlives its process. Each
//! test works in a schema of its own and drops it at the end.

#[path = "support/fulfillment.rs"]
mod fulfillment;

use eventbus_core::saga::{
    Commit, Committed, Instance, MemoryStore, Outbox, PostgresStore, SagaContext, SagaStore, Sagas,
    Status, StoreError,
};
use eventbus_core::{saga, Context, Event, EventBus, EventId, FailureKind};
use fulfillment::*;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgConnectOptions;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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

// The outbox: what a step publishes and schedules is committed with its state, published by
// the committing process, and otherwise by a relay (any process running sagas on the store).

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(name = "pg.reserved", distributed)]
struct Reserved {
    order: u64,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(name = "pg.paid", distributed)]
struct Paid {
    order: u64,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(name = "pg.overdue", distributed)]
struct Overdue {
    order: u64,
}

#[derive(Event, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[event(name = "pg.released", distributed)]
struct Released {
    order: u64,
}

#[derive(Event, Clone, Debug)]
struct NotDistributed;

const DEADLINE: Duration = Duration::from_millis(300);

/// Holds a reservation until it is paid, or releases it at the deadline.
#[derive(Default, Serialize, Deserialize)]
struct Hold;

#[saga(name = "hold", key = u64)]
impl Hold {
    #[start(by = order)]
    fn reserved(&mut self, e: &Reserved, ctx: &mut SagaContext) {
        ctx.schedule(DEADLINE, Overdue { order: e.order });
    }

    #[step(by = order)]
    fn paid(&mut self, e: &Paid, ctx: &mut SagaContext) {
        // Scheduled by a step that ends the saga: never kept, never fired.
        ctx.schedule(DEADLINE, Overdue { order: e.order });
        ctx.complete();
    }

    #[step(by = order)]
    fn overdue(&mut self, e: &Overdue, ctx: &mut SagaContext) {
        ctx.publish(Released { order: e.order });
        ctx.compensate("overdue");
    }
}

/// A saga that publishes an event a durable store cannot keep.
#[derive(Default, Serialize, Deserialize)]
struct Careless;

#[saga(name = "careless", key = u64)]
impl Careless {
    #[start(by = order)]
    fn paid(&mut self, _: &Paid, ctx: &mut SagaContext) {
        ctx.publish(NotDistributed);
    }
}

type Releases = Arc<Mutex<Vec<(u64, EventId)>>>;

/// A consumer of `Hold`: its bus, its sagas, and the releases its bus saw.
async fn holder(store: impl SagaStore, releases: &Releases) -> (EventBus, Sagas) {
    let bus = EventBus::new();
    let sagas = Sagas::builder()
        .store(store)
        .saga::<Hold>()
        .saga::<Fulfillment>()
        .relay_every(Duration::from_millis(20))
        .redeliver_after(Duration::from_millis(200))
        .start(&bus)
        .unwrap();
    let r = releases.clone();
    bus.subscribe(move |e: &Released, ctx: Context| {
        r.lock().unwrap().push((e.order, ctx.event_id()))
    })
    .forever();
    (bus, sagas)
}

async fn outbox_rows(schema: &Schema) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {}.eventbus_saga_outbox",
        schema.name
    ))
    .fetch_one(schema.admin.pool())
    .await
    .unwrap()
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_event_fires_after_a_restart_and_compensates() {
    let schema = Schema::new().await;
    let releases = Releases::default();
    {
        let (bus, _sagas) = holder(schema.store().await, &releases).await;
        assert!(bus.publish(Reserved { order: 1 }).await.is_ok());
    } // gone before the deadline, its timer with it
    let (_bus, sagas) = holder(schema.store().await, &releases).await;
    eventually("the release", async || !releases.lock().unwrap().is_empty()).await;
    tokio::time::sleep(DEADLINE).await;
    assert_eq!(releases.lock().unwrap().len(), 1, "released once");
    let found = schema
        .store()
        .await
        .load("hold", "1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.status, Status::Compensated("overdue".into()));
    assert_eq!(sagas.stats("hold").unwrap().timeouts_fired, 1);
    assert_eq!(outbox_rows(&schema).await, 0);
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_event_never_fires_once_the_saga_completed() {
    let schema = Schema::new().await;
    let releases = Releases::default();
    let (bus, sagas) = holder(schema.store().await, &releases).await;
    assert!(bus.publish(Reserved { order: 2 }).await.is_ok());
    assert_eq!(outbox_rows(&schema).await, 1, "the deadline is kept");
    assert!(bus.publish(Paid { order: 2 }).await.is_ok());
    assert_eq!(outbox_rows(&schema).await, 0, "completing dropped it");
    tokio::time::sleep(DEADLINE * 2).await;
    assert!(releases.lock().unwrap().is_empty());
    assert_eq!(sagas.stats("hold").unwrap().timeouts_fired, 0);
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_fire_each_of_200_deadlines_once() {
    let schema = Schema::new().await;
    let releases = Releases::default();
    let (a, sagas_a) = holder(schema.store().await, &releases).await;
    let (_b, sagas_b) = holder(schema.store().await, &releases).await;
    for order in 0..200 {
        assert!(a.publish(Reserved { order }).await.is_ok());
    }
    eventually("200 releases", async || {
        releases.lock().unwrap().len() >= 200
    })
    .await;
    tokio::time::sleep(DEADLINE).await;
    let mut orders: Vec<u64> = releases
        .lock()
        .unwrap()
        .iter()
        .map(|(order, _)| *order)
        .collect();
    orders.sort_unstable();
    assert_eq!(
        orders,
        (0..200).collect::<Vec<_>>(),
        "each deadline fired once"
    );
    let fired = sagas_a.stats("hold").unwrap().timeouts_fired
        + sagas_b.stats("hold").unwrap().timeouts_fired;
    assert_eq!(fired, 200);
    println!(
        "relay a fired {}, relay b fired {}",
        sagas_a.stats("hold").unwrap().timeouts_fired,
        sagas_b.stats("hold").unwrap().timeouts_fired
    );
    assert_eq!(outbox_rows(&schema).await, 0);
    schema.drop().await;
}

/// PostgreSQL, with the connection lost right after each commit: the process that committed
/// never publishes what its step left (the window a crash leaves).
struct LostAfterCommit(PostgresStore);

impl SagaStore for LostAfterCommit {
    fn load<'a>(
        &'a self,
        saga: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Instance>, StoreError>> {
        self.0.load(saga, key)
    }

    fn commit<'a>(
        &'a self,
        saga: &'a str,
        key: &'a str,
        commit: Commit,
    ) -> BoxFuture<'a, Result<Committed, StoreError>> {
        Box::pin(async move {
            self.0.commit(saga, key, commit).await?;
            Err(StoreError::new("connection lost after the commit"))
        })
    }

    fn outbox(&self) -> Option<&dyn Outbox> {
        self.0.outbox()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_step_committed_is_published_even_when_its_process_dies_first() {
    let schema = Schema::new().await;
    let started = Log::default();
    let releases = Releases::default();
    let (dying, dying_sagas) = holder(LostAfterCommit(schema.store().await), &releases).await;
    let s = started.clone();
    dying
        .subscribe(move |e: &FulfillmentStarted| s.lock().unwrap().push(e.clone()))
        .forever();
    // The step commits (state and outbox) and then fails: nothing published by this process.
    assert!(!dying.publish(payment(5)).await.is_ok());
    assert!(!dying.publish(reservation(5)).await.is_ok());
    assert!(started.lock().unwrap().is_empty());
    let found = schema
        .store()
        .await
        .load("fulfillment", "A-5")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.status, Status::Completed, "committed all the same");
    drop((dying, dying_sagas)); // the process dies, its relay with it

    // Another process's relay publishes it, once the grace period has passed.
    let (other, sagas) = holder(schema.store().await, &releases).await;
    let s = started.clone();
    other
        .subscribe(move |e: &FulfillmentStarted| s.lock().unwrap().push(e.clone()))
        .forever();
    eventually("the relayed event", async || {
        !started.lock().unwrap().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        *started.lock().unwrap(),
        [FulfillmentStarted {
            order_id: "A-5".into(),
            cents: 105
        }]
    );
    assert_eq!(sagas.stats("fulfillment").unwrap().relayed, 1);
    assert_eq!(outbox_rows(&schema).await, 0);
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_publishing_an_event_a_durable_store_cannot_keep_commits_nothing() {
    let schema = Schema::new().await;
    let bus = EventBus::new();
    let _sagas = Sagas::builder()
        .store(schema.store().await)
        .saga::<Careless>()
        .start(&bus)
        .unwrap();
    let report = bus.publish(Paid { order: 9 }).await;
    let failure = &report.failures()[0];
    let FailureKind::Error(message) = failure.kind() else {
        panic!("{report:?}")
    };
    assert!(
        message.contains("must be an `#[event(distributed)]` event"),
        "{message}"
    );
    assert!(schema
        .store()
        .await
        .load("careless", "9")
        .await
        .unwrap()
        .is_none());
    schema.drop().await;
}
