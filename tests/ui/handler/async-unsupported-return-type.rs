use eventbus_core::{handler, Event};

#[derive(Event)]
pub struct Ping;

#[handler]
async fn on_ping(_: &Ping) -> Option<()> {
    None
}

fn main() {}
