use eventbus_core::{handler, Event};

#[derive(Event)]
struct OrderPlaced;

#[derive(Event)]
struct OrderShipped;

#[handler(publishes = OrderShipped)]
fn ship(_: &OrderPlaced) {}

fn main() {}
