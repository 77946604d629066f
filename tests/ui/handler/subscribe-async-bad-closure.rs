use eventbus_core::{Event, EventBus};

#[derive(Event)]
pub struct Ping;

fn main() {
    let bus = EventBus::new();
    let _sub = bus.subscribe_async(|_: &Ping| 7u32);
}
