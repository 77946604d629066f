//! Tuple and unit structs are events too; a tuple struct's base is a positional field.
use eventbus_core::{Event, EventExt};

#[derive(Event)]
pub struct Heartbeat;

#[derive(Event)]
#[event(extends = Heartbeat, name = "beat.tick", version = 3)]
pub struct Tick(#[event(base)] pub Heartbeat, pub u64);

fn main() {
    let tick = Tick(Heartbeat, 9);
    assert!(tick.upcast::<Heartbeat>().is_some());
    assert_eq!(Tick::TYPE.name(), "beat.tick");
    assert_eq!(Tick::TYPE.version(), 3);
}
