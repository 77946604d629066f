use eventbus_core::{handler, Event};

#[derive(Event)]
pub struct Ping;

pub struct Service;

impl Service {
    #[handler]
    fn on_ping(&self, _: &Ping) {}
}

fn main() {}
