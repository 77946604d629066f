use eventbus_core::handler;

pub struct Ping;

#[handler]
fn on_ping(_: &Ping) {}

fn main() {}
