//! The reference fulfillment saga of the saga tests: paid and reserved, in either order, then
//! `FulfillmentStarted`; reserved but not paid within 30 minutes, then compensation.

use eventbus_core::saga::SagaContext;
use eventbus_core::{saga, Event};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(name = "sagas.payment_processed", distributed)]
pub struct PaymentProcessed {
    pub order_id: String,
    pub cents: u64,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(name = "sagas.inventory_reserved", distributed)]
pub struct InventoryReserved {
    // Named differently from the payment's field: each step says where its key is.
    pub order: String,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(name = "sagas.payment_timed_out", distributed)]
pub struct PaymentTimedOut {
    pub order_id: String,
}

// Distributed: a saga on a durable store keeps what it publishes in its outbox, as CloudEvents.
#[derive(Event, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[event(name = "sagas.fulfillment_started", distributed)]
pub struct FulfillmentStarted {
    pub order_id: String,
    pub cents: u64,
}

#[derive(Event, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[event(name = "sagas.release_inventory", distributed)]
pub struct ReleaseInventory {
    pub order_id: String,
}

#[derive(Default, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fulfillment {
    pub cents: Option<u64>,
    pub reserved: bool,
}

pub const PAYMENT_WINDOW: Duration = Duration::from_secs(30 * 60);

#[saga(name = "fulfillment", key = String)]
impl Fulfillment {
    #[start(by = order_id)]
    fn paid(&mut self, e: &PaymentProcessed, ctx: &mut SagaContext) -> Result<(), String> {
        if e.cents == 0 {
            return Err("a payment of 0 cents".into());
        }
        self.cents = Some(e.cents);
        self.finish(ctx);
        Ok(())
    }

    #[start(by = order)]
    fn reserved(&mut self, _: &InventoryReserved, ctx: &mut SagaContext) {
        self.reserved = true;
        if self.cents.is_none() {
            ctx.schedule(
                PAYMENT_WINDOW,
                PaymentTimedOut {
                    order_id: ctx.key().into(),
                },
            );
        }
        self.finish(ctx);
    }

    #[step(by = order_id)]
    fn timed_out(&mut self, e: &PaymentTimedOut, ctx: &mut SagaContext) {
        ctx.publish(ReleaseInventory {
            order_id: e.order_id.clone(),
        });
        ctx.compensate("no payment within 30 minutes");
    }
}

impl Fulfillment {
    fn finish(&self, ctx: &mut SagaContext) {
        if let (Some(cents), true) = (self.cents, self.reserved) {
            let order_id = ctx.key().to_owned();
            ctx.publish(FulfillmentStarted { order_id, cents });
            ctx.complete();
        }
    }
}

pub fn payment(order: u64) -> PaymentProcessed {
    PaymentProcessed {
        order_id: format!("A-{order}"),
        cents: 100 + order,
    }
}

pub fn reservation(order: u64) -> InventoryReserved {
    InventoryReserved {
        order: format!("A-{order}"),
    }
}
