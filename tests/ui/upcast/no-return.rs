use eventbus_core::{upcast, Event};

#[derive(Event)]
#[event(name = "orders.placed", version = 1)]
struct PlacedV1 { cents: u64 }

#[derive(Event)]
#[event(name = "orders.placed", version = 2)]
struct Placed { cents: u64 }

#[upcast]
fn up(old: &PlacedV1) { let _ = old; }
fn main() {}
