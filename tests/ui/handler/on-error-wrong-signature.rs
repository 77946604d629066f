use eventbus_core::{handler, Event};

#[derive(Event)]
pub struct Ping;

fn alert(message: &str) {
    let _ = message;
}

#[handler(on_error = alert)]
fn on_ping(_: &Ping) {}

fn main() {}
