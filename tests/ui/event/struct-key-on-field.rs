use eventbus_core::Event;

#[derive(Event)]
pub struct OrderPlaced {
    #[event(name = "orders.placed")]
    pub id: u64,
}

fn main() {}
