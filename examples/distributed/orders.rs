//! The `orders` service: places orders (durable stream to shipping) and hears about parcels
//! (broadcast). Run `distributed-shipping` first, in another terminal:
//!
//! ```sh
//! cargo run --example distributed-shipping
//! cargo run --example distributed-orders -- 5
//! ```

#[path = "events.rs"]
mod events;

use eventbus_core::redis::RedisBridge;
use eventbus_core::{Context, EventBus};
use events::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: usize = std::env::args().nth(1).map_or(Ok(5), |n| n.parse())?;
    let bridge = RedisBridge::builder(REDIS_URL, "orders")
        .durable::<OrderPlaced>(ORDERS_STREAM)
        .broadcast::<ParcelShipped>(NOTIFICATIONS)
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
    bridge.start(&bus).await?;

    for n in 1..=count {
        let order = OrderPlaced {
            base: ShopEvent {
                order_id: format!("A-{n:04}"),
            },
            address: format!("{n} Main Street"),
        };
        let report = bus.publish(order).await;
        println!("[orders] placed A-{n:04} (id {})", report.event_id());
    }

    let deadline = Instant::now() + Duration::from_secs(15);
    while shipped.load(Ordering::SeqCst) < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = shipped.load(Ordering::SeqCst);
    println!("[orders] {done} of {count} parcels shipped");
    if done < count {
        println!("[orders] is `cargo run --example distributed-shipping` running?");
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
