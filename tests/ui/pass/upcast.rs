//! `#[upcast]` forms that compile: a plain fn, a path to the types, an explicit lifetime,
//! and `crate = ..` through a re-export.

mod framework {
    pub use eventbus_core as eventbus;
}

use eventbus_core::{upcast, Event};

#[derive(Event)]
#[event(name = "orders.placed", version = 1)]
pub struct PlacedV1 {
    cents: u64,
}

#[derive(Event)]
#[event(name = "orders.placed", version = 2)]
pub struct PlacedV2 {
    cents: u64,
}

#[derive(Event)]
#[event(name = "orders.placed", version = 3)]
pub struct Placed {
    cents: u64,
}

#[upcast]
fn v1_to_v2<'a>(old: &'a PlacedV1) -> self::PlacedV2 {
    PlacedV2 { cents: old.cents }
}

#[framework::eventbus::upcast(crate = framework::eventbus)]
pub fn v2_to_v3(old: &PlacedV2) -> Placed {
    Placed { cents: old.cents }
}

fn main() {
    // Still ordinary fns.
    assert_eq!(v2_to_v3(&v1_to_v2(&PlacedV1 { cents: 1 })).cents, 1);
    let bus = eventbus_core::EventBus::new();
    drop(bus);
}
