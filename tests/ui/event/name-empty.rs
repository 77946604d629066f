use eventbus_core::Event;

#[derive(Event)]
#[event(name = "  ")]
pub struct OrderPlaced;

fn main() {}
