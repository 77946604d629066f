use eventbus_core::{handler, Event};

#[derive(Event)]
pub struct Ping;

#[handler]
unsafe fn on_ping(_: &Ping) {}

fn main() {}
