use eventbus_core::{handler, Context, Event};

#[derive(Event)]
pub struct Ping;

#[handler]
fn on_ping(ctx: &Context, _: &Ping) {
    let _ = ctx;
}

fn main() {}
