use eventbus_core::Event;

#[derive(Event)]
pub enum OrderEvent {
    Placed,
    Cancelled,
}

fn main() {}
