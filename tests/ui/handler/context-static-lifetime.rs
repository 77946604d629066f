use eventbus_core::{handler, Context, Event};

#[derive(Event)]
pub struct Ping;

#[handler]
async fn on_ping(_: &Ping, ctx: Context<'static>) {
    let _ = ctx;
}

fn main() {}
