//! Cost per publish, side by side in one run: the physical limit (direct calls), a hand-written
//! `TypeId` map bus, eventbus, and peers. `cargo bench -p eventbus-benches --bench dispatch`;
//! `docs/performance.md` has the figures and how to read them.

#[path = "support/events.rs"]
mod events;
#[path = "support/poll.rs"]
mod poll;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use eventbus_core::middleware::{self, Envelope, Next};
use eventbus_core::EventBus;
use events::*;
use poll::poll_once;
use std::cell::Cell;
use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The same event for tokio-events, whose `Event` trait asks for serde.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, tokio_events::Event)]
struct TeFlat(u64);

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40)
}

fn sync_publish(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut group = c.benchmark_group("sync_publish");
    for n in [1usize, 3, 10, 100] {
        group.throughput(Throughput::Elements(1));
        let direct: Vec<fn(&Flat)> = vec![|e: &Flat| work(e.0); n];
        group.bench_with_input(BenchmarkId::new("direct_calls", n), &n, |b, _| {
            b.iter(|| {
                let e = Flat(black_box(7));
                for h in &direct {
                    h(&e);
                }
            })
        });
        let mut map = TypeIdBus::default();
        for _ in 0..n {
            map.subscribe(|e: &Flat| work(e.0));
        }
        group.bench_with_input(BenchmarkId::new("typeid_map", n), &n, |b, _| {
            b.iter(|| map.publish(&Flat(black_box(7))))
        });
        let bus = EventBus::new();
        for _ in 0..n {
            bus.subscribe(|e: &Flat| work(e.0)).forever();
        }
        group.bench_with_input(BenchmarkId::new("eventbus", n), &n, |b, _| {
            b.iter(|| poll_once(bus.publish(Flat(black_box(7)))))
        });
        let jaeb = rt.block_on(jaeb::EventBus::builder().build()).unwrap();
        for _ in 0..n {
            let sub = rt.block_on(jaeb.subscribe(
                |e: &Flat, _: &jaeb::EventBus| -> jaeb::HandlerResult {
                    work(e.0);
                    Ok(())
                },
            ));
            std::mem::forget(sub.unwrap());
        }
        group.bench_with_input(BenchmarkId::new("jaeb", n), &n, |b, _| {
            b.iter(|| poll_once(jaeb.publish(Flat(black_box(7)))).unwrap())
        });
    }
    group.finish();
}

fn hierarchy(c: &mut Criterion) {
    let mut group = c.benchmark_group("hierarchy");
    group.throughput(Throughput::Elements(1));
    let mut map = TypeIdBus::default();
    for _ in 0..3 {
        map.subscribe(|e: &Flat| work(e.0));
    }
    group.bench_function("typeid_map_flat_3", |b| {
        b.iter(|| map.publish(&Flat(black_box(7))))
    });
    for handlers in [3usize, 4] {
        let flat = EventBus::new();
        for _ in 0..handlers {
            flat.subscribe(|e: &Flat| work(e.0)).forever();
        }
        group.bench_function(format!("eventbus_flat_{handlers}"), |b| {
            b.iter(|| poll_once(flat.publish(Flat(black_box(7)))))
        });
    }
    // One handler per level: every publish walks the whole lineage.
    let three = EventBus::new();
    three.subscribe(|e: &L1| work(e.0)).forever();
    three.subscribe(|e: &L2| work(e.0 .0)).forever();
    three.subscribe(|e: &L3| work(e.0 .0 .0)).forever();
    group.bench_function("eventbus_3_levels_3", |b| {
        b.iter(|| poll_once(three.publish(l3(black_box(7)))))
    });
    let four = EventBus::new();
    four.subscribe(|e: &L1| work(e.0)).forever();
    four.subscribe(|e: &L2| work(e.0 .0)).forever();
    four.subscribe(|e: &L3| work(e.0 .0 .0)).forever();
    four.subscribe(|e: &L4| work(e.0 .0 .0 .0)).forever();
    group.bench_function("eventbus_4_levels_4", |b| {
        b.iter(|| poll_once(four.publish(l4(black_box(7)))))
    });
    group.finish();
}

fn with_middleware(c: &mut Criterion) {
    let mut group = c.benchmark_group("middleware");
    group.throughput(Throughput::Elements(1));
    for layers in [0usize, 3] {
        let mut builder = EventBus::builder();
        for i in 0..layers {
            builder = builder.middleware(middleware::from_fn(
                format!("pass{i}"),
                |env: Envelope, next: Next| next.run(env),
            ));
        }
        let bus = builder.build().unwrap();
        for _ in 0..3 {
            bus.subscribe(|e: &Flat| work(e.0)).forever();
        }
        group.bench_function(format!("eventbus_{layers}_middleware_3_handlers"), |b| {
            b.iter(|| poll_once(bus.publish(Flat(black_box(7)))))
        });
    }
    // The same pass-through, as sync middleware: hooks before and after, no future.
    let mut builder = EventBus::builder();
    for _ in 0..3 {
        builder = builder.middleware(middleware::sync(PassThrough));
    }
    let bus = builder.build().unwrap();
    for _ in 0..3 {
        bus.subscribe(|e: &Flat| work(e.0)).forever();
    }
    group.bench_function("eventbus_3_sync_middleware_3_handlers", |b| {
        b.iter(|| poll_once(bus.publish(Flat(black_box(7)))))
    });
    group.finish();
}

/// A sync middleware that lets everything through.
struct PassThrough;

impl middleware::SyncMiddleware for PassThrough {
    fn before(&self, envelope: &mut middleware::EnvelopeMut<'_>) -> middleware::Flow {
        black_box(envelope.depth());
        middleware::Flow::Continue
    }

    fn after(&self, report: &mut eventbus_core::PublishReport) {
        black_box(report.handled());
    }
}

/// Sends one event, then yields until `handled` has counted `n` more handler runs: how the
/// peers that only spawn or send are timed to completion.
async fn until_handled(handled: &AtomicU64, n: usize, send: impl Future<Output = ()>) {
    let target = handled.load(Ordering::Acquire) + n as u64;
    send.await;
    while handled.load(Ordering::Acquire) < target {
        tokio::task::yield_now().await;
    }
}

/// Async handlers: every contender does the same work per handler and the measurement ends
/// when every handler has run (peers that only spawn are awaited to completion).
fn async_publish(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("async_publish");
    for n in [1usize, 3, 10] {
        group.throughput(Throughput::Elements(1));
        let bus = EventBus::new();
        for _ in 0..n {
            bus.subscribe(|e: &Flat| {
                let v = e.0;
                async move { work(v) }
            })
            .forever();
        }
        group.bench_with_input(BenchmarkId::new("eventbus", n), &n, |b, _| {
            b.to_async(&rt).iter(|| bus.publish(Flat(black_box(7))))
        });

        let done = Arc::new(AtomicU64::new(0));
        let jaeb = rt.block_on(jaeb::EventBus::builder().build()).unwrap();
        for _ in 0..n {
            let d = done.clone();
            let sub = rt.block_on(jaeb.subscribe(move |e: Flat, _: jaeb::EventBus| {
                let d = d.clone();
                async move {
                    work(e.0);
                    d.fetch_add(1, Ordering::Release);
                    Ok(())
                }
            }));
            std::mem::forget(sub.unwrap());
        }
        group.bench_with_input(BenchmarkId::new("jaeb", n), &n, |b, &n| {
            b.to_async(&rt).iter(|| {
                let (jaeb, done) = (&jaeb, &done);
                until_handled(done, n, async move {
                    jaeb.publish(Flat(black_box(7))).await.unwrap();
                })
            })
        });

        let te_done = Arc::new(AtomicU64::new(0));
        let te = rt
            .block_on(tokio_events::EventBusBuilder::new().build())
            .unwrap();
        for _ in 0..n {
            let d = te_done.clone();
            let handle = rt.block_on(te.subscribe(move |e: TeFlat| {
                let d = d.clone();
                async move {
                    work(e.0);
                    d.fetch_add(1, Ordering::Release);
                }
            }));
            std::mem::forget(handle.unwrap());
        }
        group.bench_with_input(BenchmarkId::new("tokio_events", n), &n, |b, &n| {
            b.to_async(&rt).iter(|| {
                let (te, done) = (&te, &te_done);
                until_handled(done, n, async move {
                    te.publish(TeFlat(black_box(7))).await.unwrap();
                })
            })
        });

        let evno_done = Arc::new(AtomicU64::new(0));
        let evno_bus = rt.block_on(async {
            let bus = evno::Bus::new(1024);
            for _ in 0..n {
                let d = evno_done.clone();
                bus.on(evno::from_fn(move |e: evno::Guard<Flat>| {
                    let d = d.clone();
                    async move {
                        work(e.0);
                        d.fetch_add(1, Ordering::Release);
                    }
                }));
            }
            bus
        });
        group.bench_with_input(BenchmarkId::new("evno", n), &n, |b, &n| {
            b.to_async(&rt).iter(|| {
                let (bus, done) = (&evno_bus, &evno_done);
                until_handled(done, n, async move {
                    evno::Emit::emit(bus, Flat(black_box(7))).await;
                })
            })
        });

        let (tx, _) = tokio::sync::broadcast::channel::<Flat>(1024);
        let received = Arc::new(AtomicU64::new(0));
        for _ in 0..n {
            let mut rx = tx.subscribe();
            let r = received.clone();
            rt.spawn(async move {
                while let Ok(e) = rx.recv().await {
                    work(e.0);
                    r.fetch_add(1, Ordering::Release);
                }
            });
        }
        group.bench_with_input(BenchmarkId::new("tokio_broadcast", n), &n, |b, &n| {
            b.to_async(&rt).iter(|| {
                let (tx, received) = (&tx, &received);
                until_handled(received, n, async move {
                    tx.send(Flat(black_box(7))).ok();
                })
            })
        });

        let (atx, arx) = async_broadcast::broadcast::<Flat>(1024);
        let areceived = Arc::new(AtomicU64::new(0));
        for _ in 0..n {
            let mut rx = arx.clone();
            let r = areceived.clone();
            rt.spawn(async move {
                while let Ok(e) = rx.recv().await {
                    work(e.0);
                    r.fetch_add(1, Ordering::Release);
                }
            });
        }
        drop(arx);
        group.bench_with_input(BenchmarkId::new("async_broadcast", n), &n, |b, &n| {
            b.to_async(&rt).iter(|| {
                let (atx, received) = (&atx, &areceived);
                until_handled(received, n, async move {
                    atx.broadcast(Flat(black_box(7))).await.ok();
                })
            })
        });
    }
    group.finish();
}

fn emit_then_shutdown(c: &mut Criterion) {
    const EVENTS: u64 = 10_000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("emit");
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function("eventbus_10k_emits_and_shutdown_3_handlers", |b| {
        b.to_async(&rt).iter_batched(
            || {
                let bus = EventBus::builder()
                    .max_in_flight(EVENTS as usize)
                    .build()
                    .unwrap();
                for _ in 0..3 {
                    bus.subscribe(|e: &Flat| work(e.0)).forever();
                }
                bus
            },
            |bus| async move {
                for i in 0..EVENTS {
                    bus.emit(Flat(i)).unwrap();
                }
                bus.shutdown().await;
            },
            criterion::BatchSize::PerIteration,
        )
    });
    // The baseline: a tokio broadcast channel feeding one receiver task that calls the same
    // three handlers, sent 10 000 events and awaited until the receiver has run them all.
    group.bench_function("tokio_broadcast_pipeline_10k_3_handlers", |b| {
        b.to_async(&rt).iter_batched(
            || {
                let (tx, mut rx) = tokio::sync::broadcast::channel::<Flat>(EVENTS as usize);
                let receiver = tokio::spawn(async move {
                    while let Ok(e) = rx.recv().await {
                        for _ in 0..3 {
                            work(e.0);
                        }
                    }
                });
                (tx, receiver)
            },
            |(tx, receiver)| async move {
                for i in 0..EVENTS {
                    assert!(tx.send(Flat(i)).is_ok());
                }
                drop(tx);
                receiver.await.unwrap();
            },
            criterion::BatchSize::PerIteration,
        )
    });
    group.finish();
}

thread_local! {
    static LOCAL_HITS: Cell<u64> = const { Cell::new(0) };
}

/// The handlers' work when several threads publish: per thread, so that the figures measure
/// the bus rather than two cores fighting over one counter's cache line.
#[inline(never)]
fn work_local(n: u64) {
    LOCAL_HITS.with(|hits| hits.set(hits.get() + (black_box(n) & 1)));
}

/// Events per second with 1 and 2 publishing tasks on a 2-thread runtime; the direct-call
/// baseline shows how far the machine itself scales.
fn concurrent_publishers(c: &mut Criterion) {
    const PER_TASK: u64 = 20_000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let bus = EventBus::new();
    for _ in 0..3 {
        bus.subscribe(|e: &Flat| work_local(e.0)).forever();
    }
    let handler: fn(&Flat) = |e| work_local(e.0);
    let direct: Arc<[fn(&Flat)]> = Arc::new([handler; 3]);
    let mut group = c.benchmark_group("concurrent");
    for tasks in [1u64, 2] {
        group.throughput(Throughput::Elements(PER_TASK * tasks));
        group.bench_function(format!("direct_calls_{tasks}_tasks_3_handlers"), |b| {
            b.to_async(&rt).iter(|| {
                let direct = direct.clone();
                in_tasks(tasks, move |i| {
                    let e = Flat(black_box(i));
                    for h in direct.iter() {
                        h(&e);
                    }
                })
            })
        });
        group.bench_function(format!("eventbus_{tasks}_tasks_3_handlers"), |b| {
            b.to_async(&rt).iter(|| {
                let bus = bus.clone();
                in_tasks(tasks, move |i| {
                    let _ = poll_once(bus.publish(Flat(i)));
                })
            })
        });
    }
    group.finish();

    /// Runs `PER_TASK` calls of `publish` in each of `tasks` spawned tasks.
    async fn in_tasks(tasks: u64, publish: impl Fn(u64) + Clone + Send + 'static) {
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let publish = publish.clone();
                tokio::spawn(async move {
                    for i in 0..PER_TASK {
                        publish(i);
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
    }
}

/// Publishing an old version to a handler of the current one, beside what a user would write
/// by hand: call the upcaster, publish the result.
fn versioning(c: &mut Criterion) {
    let mut group = c.benchmark_group("versioning");
    group.throughput(Throughput::Elements(1));
    let bus = EventBus::new();
    bus.subscribe(|e: &Priced| work(e.cents ^ e.sku)).forever();
    let old = || PricedV1 {
        sku: black_box(7),
        euros: 3,
    };
    group.bench_function("publish_current", |b| {
        b.iter(|| poll_once(bus.publish(priced_v1_to_v2(&old()))))
    });
    group.bench_function("upcaster_call_only", |b| {
        b.iter(|| black_box(priced_v1_to_v2(&old())))
    });
    group.bench_function("publish_old_upcast", |b| {
        b.iter(|| poll_once(bus.publish(old())))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = versioning, sync_publish, hierarchy, with_middleware, async_publish, emit_then_shutdown, concurrent_publishers
}
criterion_main!(benches);
