use eventbus_core::{handler, Event};

#[derive(Event)]
struct OrderPlaced;

struct Invoice;

#[handler(publishes = [Invoice])]
fn bill(_: &OrderPlaced) {}

fn main() {}
