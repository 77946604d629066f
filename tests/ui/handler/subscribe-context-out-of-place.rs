use eventbus_core::{Context, Event, EventBus, State};

#[derive(Event)]
pub struct Ping;

fn main() {
    let bus = EventBus::builder().state(7u32).build().unwrap();
    // A closure's `Context` comes right after the event.
    let _sub = bus.subscribe(|_: &Ping, _: State<u32>, _: Context| ());
}
