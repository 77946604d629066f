use eventbus_core::saga::SagaContext;
use eventbus_core::{saga, Event};
use serde::{Deserialize, Serialize};

#[derive(Event)]
struct PaymentProcessed {
    order_id: String,
    amount: u64,
}

#[derive(Event)]
struct InventoryReserved {
    order_id: String,
}

#[derive(Default, Serialize, Deserialize)]
struct Fulfillment {
    paid: bool,
}

#[saga(key = String)]
impl Fulfillment {
    #[start(by = 0)]
    fn paid(&mut self, _: &PaymentProcessed, _: &mut SagaContext) {
        self.paid = true;
    }
}

fn main() {}
