use eventbus_core::saga::SagaContext;
use eventbus_core::{saga, Event};
use serde::{Deserialize, Serialize};

#[derive(Event)]
struct Payment {
    order_id: String,
}

#[derive(Event)]
#[event(extends = Payment)]
struct PaymentProcessed {
    #[event(base)]
    base: Payment,
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
    #[start(by = base.order)]
    fn paid(&mut self, _: &PaymentProcessed, _: &mut SagaContext) {
        self.paid = true;
    }
}

fn main() {}
