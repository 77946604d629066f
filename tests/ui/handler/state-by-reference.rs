use eventbus_core::{handler, Event, State};

#[derive(Event)]
pub struct Ping;

pub struct Counter;

#[handler]
fn on_ping(_: &Ping, counter: &State<Counter>) {
    let _ = counter;
}

fn main() {}
