//! Allocations per publish, counted with a counting global allocator. Allocation counts are
//! deterministic (unlike timings), so they are asserted here; speed lives in `cargo bench`.

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{allocations_in, poll_once};
use eventbus_core::middleware::{self, EnvelopeMut, Flow, SyncMiddleware};
use eventbus_core::{Context, Event, EventBus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Event)]
struct Root {
    n: u64,
}

#[derive(Event)]
#[event(extends = Root)]
struct Middle {
    #[event(base)]
    base: Root,
}

#[derive(Event)]
#[event(extends = Middle)]
struct Leaf {
    #[event(base)]
    base: Middle,
}

fn leaf(n: u64) -> Leaf {
    Leaf {
        base: Middle { base: Root { n } },
    }
}

#[test]
fn publishing_to_sync_handlers_over_a_hierarchy_allocates_nothing() {
    let bus = EventBus::new();
    let sum = Arc::new(AtomicUsize::new(0));
    let (a, b, c) = (sum.clone(), sum.clone(), sum.clone());
    let _root = bus.subscribe(move |e: &Root| {
        a.fetch_add(e.n as usize, Ordering::Relaxed);
    });
    let _middle = bus.subscribe(move |_: &Middle, ctx: Context| {
        b.fetch_add(ctx.depth() as usize + 1, Ordering::Relaxed);
    });
    let _leaf = bus.subscribe(move |_: &Leaf| -> Result<(), String> {
        c.fetch_add(1, Ordering::Relaxed);
        Ok(())
    });
    // The first publish of a type resolves and caches its plan (and the id block): warm up.
    assert_eq!(poll_once(bus.publish(leaf(1))).handled(), 3);

    let (allocations, ()) = allocations_in(|| {
        for n in 0..1_000 {
            let report = poll_once(bus.publish(leaf(n)));
            assert!(report.is_ok());
        }
    });
    assert_eq!(allocations, 0, "allocations in 1000 publishes");
    assert!(sum.load(Ordering::Relaxed) > 1_000);
}

#[test]
fn a_failing_handler_allocates_only_for_its_failure() {
    let bus = EventBus::new();
    let _fails = bus.subscribe(|_: &Root| Err("no"));
    assert_eq!(poll_once(bus.publish(Root { n: 0 })).failures().len(), 1);
    let (per_publish, ()) = allocations_in(|| {
        let _ = poll_once(bus.publish(Root { n: 1 }));
    });
    // The error text, and the failure list of the report: bounded, not per handler.
    assert!(per_publish <= 3, "{per_publish} allocations");
}

#[test]
fn an_async_handler_costs_at_most_one_allocation_per_call() {
    let bus = EventBus::new();
    let sum = Arc::new(AtomicUsize::new(0));
    let mut subscriptions = Vec::new();
    for _ in 0..3 {
        let sum = sum.clone();
        subscriptions.push(bus.subscribe(move |e: &Root| {
            let (sum, n) = (sum.clone(), e.n as usize);
            async move {
                sum.fetch_add(n, Ordering::Relaxed);
            }
        }));
    }
    // A sync handler beside them takes the same (non-inline) path and must add nothing.
    subscriptions.push(bus.subscribe(|e: &Root| {
        std::hint::black_box(e.n);
    }));
    assert_eq!(poll_once(bus.publish(Root { n: 1 })).handled(), 4);

    let (allocations, ()) = allocations_in(|| {
        for n in 0..1_000 {
            assert!(poll_once(bus.publish(Root { n })).is_ok());
        }
    });
    // One buffer per publish, in which the three handlers' futures are built in turn.
    assert_eq!(allocations, 1_000, "allocations in 1000 publishes");
}

#[test]
fn three_sync_middleware_around_sync_handlers_allocate_nothing() {
    struct Pass;
    impl SyncMiddleware for Pass {
        fn before(&self, envelope: &mut EnvelopeMut<'_>) -> Flow {
            std::hint::black_box(envelope.event_name());
            Flow::Continue
        }
        fn after(&self, report: &mut eventbus_core::PublishReport) {
            std::hint::black_box(report.handled());
        }
    }
    let mut builder = EventBus::builder();
    for _ in 0..3 {
        builder = builder.middleware(middleware::sync(Pass));
    }
    let bus = builder.build().unwrap();
    for _ in 0..3 {
        bus.subscribe(|e: &Leaf| {
            std::hint::black_box(e);
        })
        .forever();
    }
    assert!(poll_once(bus.publish(leaf(0))).is_ok()); // resolves the plan
    let (allocations, ()) = allocations_in(|| {
        for n in 0..1_000 {
            assert!(poll_once(bus.publish(leaf(n))).is_ok());
        }
    });
    assert_eq!(allocations, 0, "allocations in 1000 publishes");
}

/// Emits 1 000 events of type `E` (after 100 to warm up) to one sync handler and counts the
/// allocations until all have run.
fn allocations_of_emits<E: Event>(make: impl Fn(u64) -> E) -> usize {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let bus = EventBus::new();
    let handled = Arc::new(AtomicUsize::new(0));
    let h = handled.clone();
    bus.subscribe(move |_: &E| {
        h.fetch_add(1, Ordering::Relaxed);
    })
    .forever();
    // Warm up: the plan, the runtime's queues.
    runtime.block_on(async {
        for n in 0..100 {
            bus.emit(make(n)).unwrap();
        }
        while handled.load(Ordering::Relaxed) < 100 {
            tokio::task::yield_now().await;
        }
    });
    let (allocations, ()) = allocations_in(|| {
        runtime.block_on(async {
            for n in 0..1_000 {
                bus.emit(make(n)).unwrap();
            }
            while handled.load(Ordering::Relaxed) < 1_100 {
                tokio::task::yield_now().await;
            }
        })
    });
    runtime.block_on(bus.shutdown());
    allocations
}

#[test]
fn an_emit_of_a_small_event_allocates_nothing_of_its_own() {
    // `Leaf` fits the queue's inline slot. What remains is shared by many events: the
    // queue's blocks (one per 31 events), a batch (up to 256 events) and its drain task.
    let allocations = allocations_of_emits(leaf);
    assert!(
        allocations <= 60,
        "{allocations} allocations for 1000 emitted events"
    );
}

#[derive(Event)]
struct Large {
    #[allow(dead_code)] // only its size matters: larger than the queue's inline slot
    payload: [u64; 8],
}

#[test]
fn an_emit_of_a_large_event_costs_one_allocation_its_box() {
    let allocations = allocations_of_emits(|n| Large { payload: [n; 8] });
    assert!(
        (1_000..=1_060).contains(&allocations),
        "{allocations} allocations for 1000 emitted events"
    );
}

/// A publish's future is moved (copied whole) when it is built, on the inline path too, so
/// its size is a cost of every publish. Sizes are deterministic for a compiler, like
/// allocation counts; this guards against a rare path's state growing every publish again
/// (it was 1 320 bytes before that path was slimmed).
#[test]
fn a_publish_future_stays_small() {
    let bus = EventBus::new();
    let size = std::mem::size_of_val(&bus.publish(leaf(1)));
    assert!(size <= 1_024, "a publish's future is {size} bytes");
}
