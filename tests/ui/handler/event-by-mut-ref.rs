use eventbus_core::{handler, Event};

#[derive(Event)]
pub struct Ping;

#[handler]
fn on_ping(_: &mut Ping) {}

fn main() {}
