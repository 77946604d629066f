//! Ratios that a shared machine's noise would drown in separate runs: the two cases of a pair
//! run in alternating blocks, and the ratio is taken block by block, so that a slow moment
//! slows both sides alike. `cargo bench -p eventbus-benches --bench paired [-- FILTER]`
//! prints, for each pair, the median ratio with its 10th and 90th percentiles, and the median
//! time per operation of each side. `docs/performance.md` has the figures.

#[path = "support/events.rs"]
mod events;
#[path = "support/poll.rs"]
mod poll;

use eventbus_core::EventBus;
use events::*;
use poll::poll_once;
use std::hint::black_box;
use std::time::Instant;

/// Operations per timed block, and blocks per side.
const BLOCK: u32 = 1_000;
const ROUNDS: usize = 2_000;

fn main() {
    // `cargo bench` passes `--bench`; anything else is a filter on the pair's name.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();

    if wanted("versioning") {
        let bus = EventBus::new();
        bus.subscribe(|e: &Priced| work(e.cents ^ e.sku)).forever();
        let old = || PricedV1 {
            sku: black_box(7),
            euros: 3,
        };
        paired(
            "versioning: publish v1 (upcast by the bus) / upcaster by hand + publish v2",
            || drop(black_box(poll_once(bus.publish(old())))),
            || drop(black_box(poll_once(bus.publish(priced_v1_to_v2(&old()))))),
        );
    }

    if wanted("sync_publish") {
        let bus = EventBus::new();
        bus.subscribe(|e: &L1| work(e.0)).forever();
        bus.subscribe(|e: &L2| work(e.0 .0)).forever();
        bus.subscribe(|e: &L3| work(e.0 .0 .0)).forever();
        let mut map = TypeIdBus::default();
        for _ in 0..3 {
            map.subscribe(|e: &Flat| work(e.0));
        }
        paired(
            "sync_publish: eventbus, 3 handlers over 3 levels / TypeId map, 3 handlers",
            || drop(black_box(poll_once(bus.publish(l3(black_box(7)))))),
            || map.publish(&Flat(black_box(7))),
        );
    }
}

/// Runs `a` and `b` in alternating blocks (which goes first alternates too) and prints the
/// distribution of the block-by-block ratio `a / b`.
fn paired(name: &str, mut a: impl FnMut(), mut b: impl FnMut()) {
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..BLOCK {
            f();
        }
        start.elapsed().as_secs_f64() / f64::from(BLOCK)
    };
    for _ in 0..ROUNDS / 10 {
        time(&mut a);
        time(&mut b);
    }
    let (mut ratios, mut times_a, mut times_b) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (ta, tb) = if round % 2 == 0 {
            let ta = time(&mut a);
            (ta, time(&mut b))
        } else {
            let tb = time(&mut b);
            (time(&mut a), tb)
        };
        ratios.push(ta / tb);
        times_a.push(ta);
        times_b.push(tb);
    }
    let at = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * q).round() as usize]
    };
    println!("{name}");
    println!(
        "  ratio {:.3} (p10 {:.3}, p90 {:.3}); {:.1} ns / {:.1} ns per operation",
        at(&mut ratios, 0.5),
        at(&mut ratios, 0.1),
        at(&mut ratios, 0.9),
        at(&mut times_a, 0.5) * 1e9,
        at(&mut times_b, 0.5) * 1e9,
    );
}
