use eventbus_core::Event;

#[derive(Event)]
#[event(name = orders.placed)]
pub struct Named;

fn main() {}
