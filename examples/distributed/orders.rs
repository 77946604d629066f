//! The `orders` service: places orders (durable stream to shipping and fulfillment), captures
//! their payments (durable stream to fulfillment), and hears about parcels and fulfilment
//! (broadcast). Run `distributed-shipping` and `distributed-fulfillment` first, in other
//! terminals:
//!
//! ```sh
//! cargo run --example distributed-shipping
//! cargo run --example distributed-fulfillment       # one or more instances
//! cargo run --example distributed-orders -- 5
//! ```

#[path = "events.rs"]
mod events;

use eventbus_core::bridge::Bridge;
use eventbus_core::{Context, EventBus};
use events::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: usize = std::env::args().nth(1).map_or(Ok(5), |n| n.parse())?;
    let bridge = Bridge::builder(transport(), "orders")
        .durable::<OrderPlaced>(ORDERS_STREAM)
        .durable::<PaymentCaptured>(PAYMENTS_STREAM)
        .broadcast::<ParcelShipped>(NOTIFICATIONS)
        .broadcast::<OrderFulfillmentStarted>(NOTIFICATIONS)
        .build()?;
    let bus = EventBus::builder().middleware(bridge.outbound()).build()?;

    let shipped = Arc::new(AtomicUsize::new(0));
    let s = shipped.clone();
    bus.subscribe(move |e: &ParcelShipped, ctx: Context| {
        s.fetch_add(1, Ordering::SeqCst);
        println!(
            "[orders] {} shipped as {} (from {}, correlation {})",
            e.base.order_id,
            e.tracking,
            ctx.origin().unwrap_or("here"),
            ctx.correlation_id()
        );
    })
    .forever();
    let fulfilled = Arc::new(AtomicUsize::new(0));
    let f = fulfilled.clone();
    bus.subscribe(move |e: &OrderFulfillmentStarted, ctx: Context| {
        f.fetch_add(1, Ordering::SeqCst);
        println!(
            "[orders] {} in fulfilment ({} cents; from {})",
            e.base.order_id,
            e.amount_cents,
            ctx.origin().unwrap_or("here")
        );
    })
    .forever();
    bridge.start(&bus).await?;

    // Order ids of this run: the fulfilment saga keeps its instances, so ids from an
    // earlier run would find their sagas completed already.
    let run = std::process::id();
    for n in 1..=count {
        let order = OrderPlaced {
            base: ShopEvent {
                order_id: format!("A-{run}-{n:04}"),
            },
            address: format!("{n} Main Street"),
        };
        let report = bus.publish(order).await;
        println!("[orders] placed A-{run}-{n:04} (id {})", report.event_id());
        let payment = PaymentCaptured {
            base: ShopEvent {
                order_id: format!("A-{run}-{n:04}"),
            },
            amount_cents: 1_000 + n as u64,
        };
        if let Err(error) = bus.publish(payment).await.into_result() {
            eprintln!("[orders] payment of A-{run}-{n:04} not sent: {error}");
        }
    }

    let deadline = Instant::now() + Duration::from_secs(15);
    let all_done =
        || shipped.load(Ordering::SeqCst) >= count && fulfilled.load(Ordering::SeqCst) >= count;
    while !all_done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (done, in_fulfilment) = (
        shipped.load(Ordering::SeqCst),
        fulfilled.load(Ordering::SeqCst),
    );
    println!("[orders] {done} of {count} parcels shipped, {in_fulfilment} in fulfilment");
    if done < count {
        println!("[orders] is `cargo run --example distributed-shipping` running?");
    }
    if in_fulfilment < count {
        println!("[orders] is `cargo run --example distributed-fulfillment` running?");
    }
    for unsent in bridge.shutdown().await.unsent() {
        eprintln!(
            "[orders] not sent to {}: {}",
            unsent.target(),
            unsent.payload()
        );
    }
    println!("[orders] diagnostics: {:?}", bridge.diagnostics());
    Ok(())
}
