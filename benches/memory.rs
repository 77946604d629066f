//! Memory: bytes per subscription, allocations per publish, and resident size after 10 million
//! publishes against after 100 000 (no growth). `cargo bench -p eventbus-benches --bench memory`.

#[path = "../tests/support/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{allocations_in, live_bytes, poll_once};
use eventbus_core::{Event, EventBus};

#[derive(Event)]
struct L1(u64);
#[derive(Event)]
#[event(extends = L1)]
struct L2(#[event(base)] L1);
#[derive(Event)]
#[event(extends = L2)]
struct L3(#[event(base)] L2);

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
    let before = live_bytes();
    let subscriptions: Vec<_> = (0..10_000)
        .map(|_| {
            bus.subscribe(|e: &L1| {
                std::hint::black_box(e.0);
            })
        })
        .collect();
    let _ = poll_once(bus.publish(L1(0))); // resolve the plan once, like a running service
    let per_subscription = (live_bytes() - before) as f64 / 10_000.0;
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
    let (allocations, ()) = allocations_in(|| {
        for n in 0..100_000 {
            publish(n);
        }
    });
    let per_publish = allocations as f64 / 100_000.0;
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
