use eventbus_core::{handler, Event};

#[derive(Event)]
pub struct Ping;

#[handler]
fn on_ping(_: &Ping, retries: u32) {
    let _ = retries;
}

fn main() {}
