use eventbus_core::{handler, Context};

#[handler]
fn on_nothing(_ctx: Context) {}

fn main() {}
