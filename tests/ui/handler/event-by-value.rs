use eventbus_core::{handler, Event};

#[derive(Event)]
pub struct Ping;

#[handler]
fn on_ping(e: Ping) {
    let _ = e;
}

fn main() {}
