use eventbus_core::{handler, Event};
use std::rc::Rc;

#[derive(Event)]
pub struct Ping;

#[handler]
async fn on_ping(_: &Ping) {
    let local = Rc::new(1);
    tokio::task::yield_now().await;
    let _ = local;
}

fn main() {}
