//! A saga step on the in-memory store against a plain async handler of the same event, and a
//! saga step on PostgreSQL against a raw sqlx single-row update on the same server, side by
//! side in one run. `cargo bench -p eventbus-benches --bench sagas` (the PostgreSQL group needs
//! a server on 127.0.0.1:5432, database `test`; it is skipped, saying so, without one);
//! figures in `docs/performance.md`.

#[path = "support/poll.rs"]
mod poll;

use criterion::{criterion_group, criterion_main, Criterion};
use eventbus_core::saga::{PostgresStore, SagaContext, Sagas};
use eventbus_core::{saga, Event, EventBus};
use poll::poll_once;
use serde::{Deserialize, Serialize};
use std::hint::black_box;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Event, Clone)]
struct Paid {
    order_id: String,
    cents: u64,
}

static TOTAL: AtomicU64 = AtomicU64::new(0);

#[derive(Default, Serialize, Deserialize)]
struct Ledger {
    cents: u64,
}

#[saga(key = String)]
impl Ledger {
    #[start(by = order_id)]
    fn paid(&mut self, e: &Paid, _: &mut SagaContext) {
        self.cents += e.cents;
        TOTAL.fetch_add(black_box(e.cents) & 1, Ordering::Relaxed);
    }
}

fn paid(n: u64, orders: u64) -> Paid {
    Paid {
        order_id: format!("A-{}", n % orders),
        cents: n,
    }
}

fn steps(c: &mut Criterion) {
    let mut group = c.benchmark_group("saga");
    // The same event, with its key formatted the same way, to an async handler doing the work.
    group.bench_function("plain_async_handler", |b| {
        let bus = EventBus::new();
        bus.subscribe(|e: &Paid| {
            let cents = e.cents;
            async move {
                TOTAL.fetch_add(black_box(cents) & 1, Ordering::Relaxed);
            }
        })
        .forever();
        let mut n = 0;
        b.iter(|| {
            n += 1;
            assert!(poll_once(bus.publish(paid(n, 1_000_000))).is_ok());
        });
    });
    // Each event starts an instance: load (none), run, serialise, insert.
    group.bench_function("memory_store_start", |b| {
        b.iter_custom(|iters| {
            let bus = EventBus::new();
            let _sagas = Sagas::builder().saga::<Ledger>().start(&bus).unwrap();
            let start = Instant::now();
            for n in 0..iters {
                assert!(poll_once(bus.publish(paid(n, u64::MAX))).is_ok());
            }
            start.elapsed()
        });
    });
    // Events spread over 1,000 running instances: load, decode, run, encode, compare-and-write.
    group.bench_function("memory_store_step_of_1000_instances", |b| {
        b.iter_custom(|iters| {
            let bus = EventBus::new();
            let _sagas = Sagas::builder().saga::<Ledger>().start(&bus).unwrap();
            for n in 0..1_000 {
                assert!(poll_once(bus.publish(paid(n, 1_000))).is_ok());
            }
            let start = Instant::now();
            for n in 0..iters {
                assert!(poll_once(bus.publish(paid(n, 1_000))).is_ok());
            }
            start.elapsed()
        });
    });
    group.finish();
}

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Each iteration is one event for one of 1,000 running instances: load, run, conditional
/// update (two round trips); against one `UPDATE .. WHERE version = $read` of a row (one).
fn postgres(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let Ok(admin) = rt.block_on(PostgresStore::connect(POSTGRES)) else {
        eprintln!("saga_postgres: no PostgreSQL on 127.0.0.1:5432; skipped");
        return;
    };
    let schema = format!("eventbus_bench_{}", std::process::id());
    let options = |schema: &str| {
        sqlx::postgres::PgConnectOptions::from_str(POSTGRES)
            .unwrap()
            .options([("search_path", schema)])
    };
    let (bus, _sagas, raw) = rt.block_on(async {
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(admin.pool())
            .await
            .unwrap();
        let store = PostgresStore::connect_with(options(&schema)).await.unwrap();
        store.migrate().await.unwrap();
        let raw = PostgresStore::connect_with(options(&schema)).await.unwrap();
        sqlx::query("CREATE TABLE counters (id bigint PRIMARY KEY, cents bigint, version bigint)")
            .execute(raw.pool())
            .await
            .unwrap();
        sqlx::query("INSERT INTO counters SELECT g, 0, 0 FROM generate_series(0, 999) g")
            .execute(raw.pool())
            .await
            .unwrap();
        let bus = EventBus::new();
        let sagas = Sagas::builder()
            .store(store)
            .saga::<Ledger>()
            .start(&bus)
            .unwrap();
        for n in 0..1_000 {
            assert!(bus.publish(paid(n, 1_000)).await.is_ok());
        }
        (bus, sagas, raw)
    });
    let mut group = c.benchmark_group("saga_postgres");
    let mut n = 0u64;
    group.bench_function("raw_sqlx_update", |b| {
        b.to_async(&rt).iter(|| {
            n += 1;
            let (pool, id) = (raw.pool().clone(), (n % 1_000) as i64);
            async move {
                let updated = sqlx::query(
                    "UPDATE counters SET cents = cents + $2, version = version + 1 WHERE id = $1",
                )
                .bind(id)
                .bind(id)
                .execute(&pool)
                .await
                .unwrap();
                assert_eq!(updated.rows_affected(), 1);
            }
        });
    });
    let mut n = 0u64;
    group.bench_function("saga_step", |b| {
        b.to_async(&rt).iter(|| {
            n += 1;
            let (bus, event) = (bus.clone(), paid(n, 1_000));
            async move { assert!(bus.publish(event).await.is_ok()) }
        });
    });
    group.finish();
    rt.block_on(async {
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(admin.pool())
            .await
            .unwrap();
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = steps, postgres
}
criterion_main!(benches);
