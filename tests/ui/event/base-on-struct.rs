use eventbus_core::Event;

#[derive(Event)]
#[event(base)]
pub struct OrderPlaced;

fn main() {}
