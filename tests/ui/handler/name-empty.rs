use eventbus_core::{handler, Event};

#[derive(Event)]
pub struct Ping;

#[handler(name = "")]
fn on_ping(_: &Ping) {}

fn main() {}
