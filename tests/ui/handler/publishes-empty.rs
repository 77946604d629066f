use eventbus_core::{handler, Event};

#[derive(Event)]
struct OrderPlaced;

#[handler(publishes = [])]
fn ship(_: &OrderPlaced) {}

fn main() {}
