use eventbus_core::{handler, Event};

#[derive(Event)]
pub struct Ping;

#[handler(backoff_ms = 100)]
fn on_ping(_: &Ping) {}

fn main() {}
