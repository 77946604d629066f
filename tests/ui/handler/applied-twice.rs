use eventbus_core::{handler, Event};

#[derive(Event)]
pub struct Ping;

#[handler]
#[handler(priority = 1)]
fn on_ping(_: &Ping) {}

fn main() {}
