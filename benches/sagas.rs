//! A saga step on the in-memory store against a plain async handler of the same event, side
//! by side in one run: what loading, running, serialising and committing an instance costs.
//! `cargo bench -p eventbus-benches --bench sagas`; figures in `docs/performance.md`.

use criterion::{criterion_group, criterion_main, Criterion};
use eventbus_core::saga::{SagaContext, Sagas};
use eventbus_core::{saga, Event, EventBus};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
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

/// Everything here completes in its first poll (the memory store never waits).
fn poll_once<F: Future>(future: F) -> F::Output {
    match pin!(future)
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("expected to complete in one poll"),
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

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = steps
}
criterion_main!(benches);
