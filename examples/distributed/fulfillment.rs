//! The `fulfillment` service: a saga on PostgreSQL that starts fulfilment once an order is
//! both placed and paid, whichever event comes first. Start two instances: they share the
//! durable streams in one consumer group, and the instances on PostgreSQL, so either may take
//! either event of an order. Stops on Ctrl-C, or after the number of seconds given.
//!
//! ```sh
//! cargo run --example distributed-fulfillment          # terminal 1 (and again in terminal 2)
//! cargo run --example distributed-orders -- 5          # terminal 3
//! ```

#[path = "events.rs"]
mod events;

use eventbus_core::bridge::Bridge;
use eventbus_core::saga::{PostgresStore, SagaContext, Sagas};
use eventbus_core::{saga, Context, EventBus};
use events::*;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One order's fulfilment: what has been seen of it.
#[derive(Default, Serialize, Deserialize)]
struct Fulfillment {
    placed: bool,
    amount_cents: Option<u64>,
}

#[saga(name = "shop.fulfillment", key = String)]
impl Fulfillment {
    // The key sits in the base event both share.
    #[start(by = base.order_id)]
    fn placed(&mut self, _: &OrderPlaced, ctx: &mut SagaContext) {
        self.placed = true;
        self.try_start(ctx);
    }

    #[start(by = base.order_id)]
    fn paid(&mut self, e: &PaymentCaptured, ctx: &mut SagaContext) {
        self.amount_cents = Some(e.amount_cents);
        self.try_start(ctx);
    }
}

impl Fulfillment {
    fn try_start(&self, ctx: &mut SagaContext) {
        if let (true, Some(amount_cents)) = (self.placed, self.amount_cents) {
            // No output here: a step may run again after losing a race for its instance, and
            // acts only through its state and its context.
            let order_id = ctx.key().to_owned();
            ctx.publish(OrderFulfillmentStarted {
                base: ShopEvent { order_id },
                amount_cents,
            });
            ctx.complete();
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let run_for = std::env::args()
        .nth(1)
        .map(|s| s.parse::<u64>())
        .transpose()?;
    let database = std::env::var("DATABASE_URL").unwrap_or_else(|_| DATABASE_URL.to_owned());
    let store = PostgresStore::connect(&database).await?;
    store.migrate().await?;

    let bridge = Bridge::builder(transport(), "fulfillment")
        .durable::<OrderPlaced>(ORDERS_STREAM)
        .durable::<PaymentCaptured>(PAYMENTS_STREAM)
        .broadcast::<OrderFulfillmentStarted>(NOTIFICATIONS)
        .build()?;
    let bus = EventBus::builder().middleware(bridge.outbound()).build()?;
    let sagas = Sagas::builder()
        .store(store)
        .saga::<Fulfillment>()
        .start(&bus)?;
    // What this instance started (the other instances' broadcasts arrive here too).
    bus.subscribe(|e: &OrderFulfillmentStarted, ctx: Context| {
        if ctx.origin().is_none() {
            println!(
                "[fulfillment] {}: placed and paid, fulfilment started",
                e.base.order_id
            );
        }
    })
    .forever();
    bridge.start(&bus).await?;
    println!(
        "[fulfillment] instance {} waiting for orders and payments",
        bridge.instance()
    );

    match run_for {
        Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
        None => tokio::signal::ctrl_c().await?,
    }
    let report = bridge.shutdown().await;
    if !report.is_complete() {
        eprintln!("[fulfillment] not sent: {:?}", report.unsent());
    }
    println!(
        "[fulfillment] {:?}",
        sagas.stats("shop.fulfillment").expect("the saga runs")
    );
    Ok(())
}
