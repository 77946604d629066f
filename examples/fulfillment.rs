//! The reference `FulfillmentSaga`: an order ships once it is paid *and* its inventory is
//! reserved, whichever comes first. If the payment does not arrive in time, the reservation is
//! released and the order cancelled (compensation).
//!
//! Runs on the in-memory saga store, no server needed:
//!
//! ```sh
//! cargo run --example fulfillment
//! ```

use eventbus_core::saga::{SagaContext, Sagas};
use eventbus_core::{saga, Context, Event, EventBus};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Event, Clone, Debug)]
#[event(name = "payments.processed")]
struct PaymentProcessed {
    order_id: String,
    amount_cents: u64,
}

#[derive(Event, Clone, Debug)]
#[event(name = "inventory.reserved")]
struct InventoryReserved {
    order: String,
    sku: String,
}

#[derive(Event, Clone, Debug)]
#[event(name = "fulfillment.payment_overdue")]
struct PaymentOverdue {
    order_id: String,
}

#[derive(Event, Clone, Debug)]
#[event(name = "fulfillment.started")]
struct OrderFulfillmentStarted {
    order_id: String,
    amount_cents: u64,
    sku: String,
}

#[derive(Event, Clone, Debug)]
#[event(name = "inventory.release_requested")]
struct ReleaseInventory {
    order_id: String,
    sku: String,
}

#[derive(Event, Clone, Debug)]
#[event(name = "orders.cancelled")]
struct OrderCancelled {
    order_id: String,
    reason: String,
}

/// How long a reserved order waits for its payment (30 minutes in a shop; short here).
const PAYMENT_WINDOW: Duration = Duration::from_millis(500);

/// The saga's state: what it has seen of one order so far.
#[derive(Default, Serialize, Deserialize)]
struct FulfillmentSaga {
    amount_cents: Option<u64>,
    sku: Option<String>,
}

#[saga(name = "fulfillment", key = String)]
impl FulfillmentSaga {
    #[start(by = order_id)]
    fn on_payment(&mut self, e: &PaymentProcessed, ctx: &mut SagaContext) {
        self.amount_cents = Some(e.amount_cents);
        self.try_start(ctx);
    }

    // The inventory service calls its key `order`: each step names its own field.
    #[start(by = order)]
    fn on_reservation(&mut self, e: &InventoryReserved, ctx: &mut SagaContext) {
        self.sku = Some(e.sku.clone());
        if self.amount_cents.is_none() {
            let order_id = ctx.key().to_owned();
            ctx.schedule(PAYMENT_WINDOW, PaymentOverdue { order_id });
        }
        self.try_start(ctx);
    }

    #[step(by = order_id)]
    fn on_overdue(&mut self, e: &PaymentOverdue, ctx: &mut SagaContext) {
        let sku = self.sku.clone().unwrap_or_default();
        ctx.publish(ReleaseInventory {
            order_id: e.order_id.clone(),
            sku,
        });
        ctx.publish(OrderCancelled {
            order_id: e.order_id.clone(),
            reason: "no payment in time".into(),
        });
        ctx.compensate("payment overdue");
    }
}

impl FulfillmentSaga {
    fn try_start(&self, ctx: &mut SagaContext) {
        if let (Some(amount_cents), Some(sku)) = (self.amount_cents, &self.sku) {
            let event = OrderFulfillmentStarted {
                order_id: ctx.key().to_owned(),
                amount_cents,
                sku: sku.clone(),
            };
            ctx.publish(event);
            ctx.complete();
        }
    }
}

/// Publishes and fails on any handler failure.
async fn send<E: Event>(bus: &EventBus, event: E) -> Result<(), eventbus_core::PublishError> {
    bus.publish(event).await.into_result().map(drop)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bus = EventBus::new();
    let sagas = Sagas::builder().saga::<FulfillmentSaga>().start(&bus)?;

    // The services downstream of the saga.
    let _shipping = bus.subscribe(|e: &OrderFulfillmentStarted, ctx: Context| {
        println!(
            "shipping: {} ({} cents, {}), correlation {}",
            e.order_id,
            e.amount_cents,
            e.sku,
            ctx.correlation_id()
        );
    });
    let _inventory = bus.subscribe(|e: &ReleaseInventory| {
        println!("inventory: releasing {} of {}", e.sku, e.order_id);
    });
    let _orders = bus.subscribe(|e: &OrderCancelled| {
        println!("orders: {} cancelled: {}", e.order_id, e.reason);
    });

    // A-1: paid, then reserved.
    let payment = |order_id: &str, amount_cents| PaymentProcessed {
        order_id: order_id.into(),
        amount_cents,
    };
    let reservation = |order: &str, sku: &str| InventoryReserved {
        order: order.into(),
        sku: sku.into(),
    };
    send(&bus, payment("A-1", 4_200)).await?;
    send(&bus, reservation("A-1", "kettle")).await?;
    // A-2: reserved, then paid within the window.
    send(&bus, reservation("A-2", "teapot")).await?;
    send(&bus, payment("A-2", 2_500)).await?;
    // A-3: reserved, never paid: compensated when the window closes.
    send(&bus, reservation("A-3", "mug")).await?;
    // A late duplicate for A-1 finds the saga completed: ignored and counted.
    send(&bus, payment("A-1", 4_200)).await?;

    tokio::time::sleep(PAYMENT_WINDOW * 2).await;
    let stats = sagas.stats("fulfillment").expect("the saga runs");
    println!(
        "fulfillment: {} started, {} completed, {} compensated, {} ignored after the end, {} timeouts fired",
        stats.started, stats.completed, stats.compensated, stats.after_end, stats.timeouts_fired
    );
    assert_eq!((stats.completed, stats.compensated), (2, 1));
    bus.shutdown().await;
    Ok(())
}
