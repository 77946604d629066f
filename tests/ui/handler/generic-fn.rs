use eventbus_core::{handler, Event};

#[handler]
fn on_any<E: Event>(_: &E) {}

fn main() {}
