//! The `shipping` service: consumes orders from the durable stream (start several: they share
//! the work) and broadcasts a notification per parcel. Stops on Ctrl-C, or after the number of
//! seconds given as its argument.
//!
//! ```sh
//! cargo run --example distributed-shipping          # until Ctrl-C
//! cargo run --example distributed-shipping -- 30    # for 30 seconds
//! ```

#[path = "events.rs"]
mod events;

use eventbus_core::bridge::Bridge;
use eventbus_core::{Context, EventBus};
use events::*;
use std::time::Duration;

async fn ship(e: &OrderPlaced, ctx: Context<'_>) -> Result<(), String> {
    tokio::time::sleep(Duration::from_millis(20)).await; // stands in for the carrier's API
    let tracking = format!("TRK-{}", &ctx.event_id().to_string()[24..]);
    println!(
        "[shipping] {} to {:?}: parcel {tracking}",
        e.base.order_id, e.address
    );
    // A follow-up: keeps the order's correlation id across both services.
    ctx.publish(ParcelShipped {
        base: e.base.clone(),
        tracking,
    })
    .await
    .into_result()
    .map(drop)
    .map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let run_for = std::env::args()
        .nth(1)
        .map(|s| s.parse::<u64>())
        .transpose()?;
    let bridge = Bridge::builder(transport(), "shipping")
        .durable::<OrderPlaced>(ORDERS_STREAM)
        .broadcast::<ParcelShipped>(NOTIFICATIONS)
        .build()?;
    let bus = EventBus::builder().middleware(bridge.outbound()).build()?;
    bus.subscribe(ship).forever();
    bridge.start(&bus).await?;
    println!(
        "[shipping] instance {} waiting for orders",
        bridge.instance()
    );

    match run_for {
        Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
        None => tokio::signal::ctrl_c().await?,
    }
    for unsent in bridge.shutdown().await.unsent() {
        eprintln!(
            "[shipping] not sent to {}: {}",
            unsent.target(),
            unsent.payload()
        );
    }
    println!("[shipping] diagnostics: {:?}", bridge.diagnostics());
    Ok(())
}
