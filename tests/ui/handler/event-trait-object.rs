use eventbus_core::handler;

#[handler]
fn on_any(e: &dyn eventbus_core::Event) {
    let _ = e;
}

fn main() {}
