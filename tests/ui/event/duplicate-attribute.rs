use eventbus_core::Event;

#[derive(Event)]
#[event(name = "a", name = "b")]
pub struct Twice;

fn main() {}
