use eventbus_core::Event;

#[derive(Event)]
#[event(version = "2")]
pub struct Versioned;

fn main() {}
