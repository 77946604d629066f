use eventbus_core::{handler, Event};

#[derive(Event)]
pub struct Ping;

#[handler(priority = 1, priority = 2)]
fn on_ping(_: &Ping) {}

fn main() {}
