use eventbus_core::{handler, Event};

#[derive(Event)]
pub struct Ping;

#[handler(prority = 10)]
fn on_ping(_: &Ping) {}

fn main() {}
