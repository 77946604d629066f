use eventbus_core::{handler, Event};

#[derive(Event)]
pub struct Ping;

#[handler(timeout_ms = 500)]
fn on_ping(_: &Ping) {}

fn main() {}
