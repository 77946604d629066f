use eventbus_core::{handler, Event};

#[derive(Event)]
pub struct Ping;

#[handler(retry = 0)]
fn on_ping(_: &Ping) {}

fn main() {}
