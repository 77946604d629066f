//! Sagas across processes and a crash: two consumer processes (this test binary, run again as
//! `consumer`) take the events of 1,000 fulfillment sagas from one durable Redis stream, in one
//! consumer group, with the instances on PostgreSQL. Mid-run one consumer is killed with
//! SIGKILL and started again. Afterwards every saga is completed with both of its events, and
//! each published `FulfillmentStarted` exactly once in effect: every handler delivery is
//! logged, and each order has exactly one event id among them (a redelivery keeps its id).
//! Needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 (the test script starts both).

#[path = "support/fulfillment.rs"]
mod fulfillment;
#[path = "support/redis.rs"]
mod support;

use eventbus_core::bridge::{Bridge, Unhandled};
use eventbus_core::redis::{GroupStart, RedisTransport};
use eventbus_core::saga::{PostgresStore, Sagas};
use eventbus_core::{Context, EventId};
use fulfillment::*;
use sqlx::postgres::PgConnectOptions;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};
use support::{unique, SHARED_URL};

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";
const SAGAS: u64 = 1_000;
/// Where a consumer process finds its stream and schema.
const STREAM_VAR: &str = "EVENTBUS_SAGA_CRASH_STREAM";
const SCHEMA_VAR: &str = "EVENTBUS_SAGA_CRASH_SCHEMA";

fn options(schema: &str) -> PgConnectOptions {
    PgConnectOptions::from_str(POSTGRES)
        .unwrap()
        .options([("search_path", schema)])
}

/// A consumer process: runs until it is killed. Started by the test below, never alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a consumer process of `a_consumer_killed_mid_run_loses_and_repeats_nothing`"]
async fn consumer() {
    let stream = std::env::var(STREAM_VAR).expect("started by the crash test");
    let schema = std::env::var(SCHEMA_VAR).expect("started by the crash test");
    let bridge = Bridge::builder(RedisTransport::new(SHARED_URL), "fulfillment")
        .durable::<PaymentProcessed>(&stream)
        .durable::<InventoryReserved>(&stream)
        .group_start(GroupStart::Beginning)
        .claim_idle(Duration::from_millis(500))
        .block(Duration::from_millis(100))
        .build()
        .unwrap();
    let bus = support::bus_for(&bridge);
    let store = PostgresStore::connect_with(options(&schema)).await.unwrap();
    let log = store.pool().clone();
    let _sagas = Sagas::builder()
        .store(store)
        .saga::<Fulfillment>()
        .relay_every(Duration::from_millis(50))
        .redeliver_after(Duration::from_millis(500))
        .start(&bus)
        .unwrap();
    // Every delivery of the saga's output, duplicates included.
    bus.subscribe(move |e: &FulfillmentStarted, ctx: Context| {
        let (log, order, id) = (log.clone(), e.order_id.clone(), ctx.event_id());
        async move {
            sqlx::query("INSERT INTO started (order_id, event_id) VALUES ($1, $2)")
                .bind(order)
                .bind(id.to_string())
                .execute(&log)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
    })
    .forever();
    bridge.start(&bus).await.unwrap();
    std::future::pending::<()>().await;
}

/// Consumer processes, killed when the test ends however it ends.
struct Consumers(Vec<Child>);

impl Consumers {
    fn start(&mut self, stream: &str, schema: &str) {
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "consumer", "--nocapture"])
            .env(STREAM_VAR, stream)
            .env(SCHEMA_VAR, schema)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.0.push(child);
    }
}

impl Drop for Consumers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn count(admin: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(admin).await.unwrap()
}

/// Polls until `sql` counts `want`, failing after `limit`.
async fn wait_for(admin: &sqlx::PgPool, sql: &str, want: i64, limit: Duration) {
    let start = Instant::now();
    loop {
        let got = count(admin, sql).await;
        if got >= want {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{sql}: {got} of {want} after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_mid_run_loses_and_repeats_nothing() {
    let schema = format!("eventbus_crash_{}", EventId::new().as_u128());
    let stream = unique("saga-crash");
    let admin = PostgresStore::connect(POSTGRES).await.unwrap();
    let admin = admin.pool().clone();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    let store = PostgresStore::connect_with(options(&schema)).await.unwrap();
    store.migrate().await.unwrap();
    sqlx::query("CREATE TABLE started (order_id text NOT NULL, event_id text NOT NULL)")
        .execute(store.pool())
        .await
        .unwrap();

    let mut consumers = Consumers(Vec::new());
    consumers.start(&stream, &schema);
    consumers.start(&stream, &schema);

    // The producer: each saga's two events, in a random order of sagas, either event first.
    let producer = Bridge::builder(RedisTransport::new(SHARED_URL), "checkout")
        .durable::<PaymentProcessed>(&stream)
        .durable::<InventoryReserved>(&stream)
        .on_unhandled(Unhandled::Acknowledge)
        .build()
        .unwrap();
    let bus = support::bus_for(&producer);
    producer.start(&bus).await.unwrap();
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    let mut orders: Vec<u64> = (0..SAGAS).collect();
    for i in (1..orders.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        orders.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    for order in orders {
        if order % 2 == 0 {
            assert!(bus.publish(payment(order)).await.is_ok());
            assert!(bus.publish(reservation(order)).await.is_ok());
        } else {
            assert!(bus.publish(reservation(order)).await.is_ok());
            assert!(bus.publish(payment(order)).await.is_ok());
        }
    }

    let instances = format!("SELECT count(*) FROM {schema}.eventbus_saga_instances");
    wait_for(&admin, &instances, 300, Duration::from_secs(60)).await;
    // kill -9 of the first consumer, mid-run, and a new one in its place.
    consumers.0[0].kill().unwrap();
    consumers.0[0].wait().unwrap();
    let at_kill = count(&admin, &instances).await;
    // What the group had handed out and not seen acknowledged when the consumer died.
    let mut redis = support::connect(SHARED_URL).await;
    let pending: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
        .arg(&stream)
        .arg("fulfillment")
        .query_async(&mut redis)
        .await
        .unwrap();
    consumers.start(&stream, &schema);

    let completed =
        format!("SELECT count(*) FROM {schema}.eventbus_saga_instances WHERE status = 'completed'");
    wait_for(&admin, &completed, SAGAS as i64, Duration::from_secs(120)).await;
    let per_order = format!("SELECT count(DISTINCT order_id) FROM {schema}.started");
    wait_for(&admin, &per_order, SAGAS as i64, Duration::from_secs(60)).await;
    // Give late redeliveries their chance to show up as a second id.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let ids_per_order: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT count(DISTINCT event_id) FROM {schema}.started GROUP BY order_id"
    ))
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(ids_per_order.len(), SAGAS as usize);
    assert!(
        ids_per_order.iter().all(|&n| n == 1),
        "an order published FulfillmentStarted under two ids"
    );
    let both = count(
        &admin,
        &format!(
            "SELECT count(*) FROM {schema}.eventbus_saga_instances \
             WHERE version = 2 AND (state->>'reserved')::boolean AND state->'cents' IS NOT NULL \
               AND array_length(processed, 1) = 2"
        ),
    )
    .await;
    assert_eq!(
        both, SAGAS as i64,
        "every instance took both of its events once"
    );
    let deliveries = count(&admin, &format!("SELECT count(*) FROM {schema}.started")).await;
    println!(
        "killed at {at_kill} instances with {} entries pending in the group; {deliveries} deliveries of {SAGAS} FulfillmentStarted",
        pending.count()
    );

    drop(consumers);
    assert!(producer.shutdown().await.is_complete());
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
}
