use eventbus_core::{handler, Event};

#[derive(Event)]
pub struct Ping;

#[derive(Event)]
pub struct Pong;

#[handler]
fn on_both(_: &Ping, _: &Pong) {}

fn main() {}
