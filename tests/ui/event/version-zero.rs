use eventbus_core::Event;

#[derive(Event)]
#[event(name = "orders.placed", version = 0)]
pub struct OrderPlaced;

fn main() {}
