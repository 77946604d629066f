use eventbus_core::handler;

#[handler]
pub struct NotAFunction;

fn main() {}
