//! Memory: bytes per subscription, allocations per publish, and resident size after 10 million
//! publishes against after 100 000 (no growth). `cargo bench -p eventbus-benches --bench memory`.

use eventbus_core::{Event, EventBus};
use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

struct Counting;
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers to `System`, which upholds `GlobalAlloc`; only counts on the side.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's layout contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Event)]
struct L1(u64);
#[derive(Event)]
#[event(extends = L1)]
struct L2(#[event(base)] L1);
#[derive(Event)]
#[event(extends = L2)]
struct L3(#[event(base)] L2);

fn poll_once<F: Future>(future: F) -> F::Output {
    match pin!(future)
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("sync publish completes at once"),
    }
}

fn resident_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4
}

fn main() {
    // `cargo test` runs benches with --bench only under `cargo bench`; keep `--no-run` cheap.
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let bus = EventBus::new();
    let before = ALLOCATED.load(Ordering::Relaxed);
    let subscriptions: Vec<_> = (0..10_000)
        .map(|_| {
            bus.subscribe(|e: &L1| {
                std::hint::black_box(e.0);
            })
        })
        .collect();
    let _ = poll_once(bus.publish(L1(0))); // resolve the plan once, like a running service
    let per_subscription = (ALLOCATED.load(Ordering::Relaxed) - before) as f64 / 10_000.0;
    drop(subscriptions);

    let bus = EventBus::new();
    bus.subscribe(|e: &L1| {
        std::hint::black_box(e.0);
    })
    .forever();
    bus.subscribe(|e: &L2| {
        std::hint::black_box(e.0 .0);
    })
    .forever();
    bus.subscribe(|e: &L3| {
        std::hint::black_box(e.0 .0 .0);
    })
    .forever();
    let publish = |n: u64| poll_once(bus.publish(L3(L2(L1(n))))).handled();
    publish(0);
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    for n in 0..100_000 {
        publish(n);
    }
    let per_publish = (ALLOCATIONS.load(Ordering::Relaxed) - allocations) as f64 / 100_000.0;
    let rss_100k = resident_kib();
    for n in 0..9_900_000 {
        publish(n);
    }
    let rss_10m = resident_kib();

    println!("bytes per subscription (10 000 subscriptions, plan cached): {per_subscription:.0}");
    println!("allocations per publish (3 sync handlers, 3-level hierarchy): {per_publish}");
    println!("resident after 100 000 publishes: {rss_100k} KiB");
    println!("resident after 10 000 000 publishes: {rss_10m} KiB");
    println!("growth: {} KiB", rss_10m as i64 - rss_100k as i64);
}
