//! A service not yet upgraded: it knows `catalog.price_changed` at version 1 only (a price in
//! euros as a float), publishes it, and reads it. Run it beside `versioning-current`, which
//! knows versions 1 and 2; `docs/versioning.md` walks through the migration.
//!
//! ```sh
//! cargo run --example versioning-legacy -- publish 3    # sends 3 v1 price changes
//! cargo run --example versioning-legacy -- listen 10    # reads price changes for 10 s
//! ```

use eventbus_core::bridge::Bridge;
use eventbus_core::redis::{GroupStart, RedisTransport};
use eventbus_core::{Context, Event, EventBus};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[path = "demo.rs"]
mod demo;

use demo::{PRICES, REDIS_URL};

/// Version 1, as this service has always sent it.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(name = "catalog.price_changed", version = 1, distributed)]
struct PriceChanged {
    sku: String,
    /// Euros.
    price: f64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mode, n, _) = demo::args();
    let bridge = Bridge::builder(RedisTransport::new(REDIS_URL), "legacy-search")
        .durable::<PriceChanged>(PRICES)
        .group_start(GroupStart::Beginning)
        .build()?;
    let bus = EventBus::builder().middleware(bridge.outbound()).build()?;
    match mode.as_str() {
        "publish" => {
            bridge.start(&bus).await?;
            for i in 1..=n {
                let change = PriceChanged {
                    sku: format!("SKU-{i}"),
                    price: 9.99 + i as f64,
                };
                println!(
                    "[legacy] sends v1 {} at {:.2} EUR",
                    change.sku, change.price
                );
                bus.publish(change).await.into_result().map(drop)?;
            }
        }
        "listen" => {
            bus.subscribe(|e: &PriceChanged, ctx: Context| {
                println!(
                    "[legacy] v1 {} at {:.2} (sent by {:?})",
                    e.sku,
                    e.price,
                    ctx.origin()
                );
            })
            .forever();
            bridge.start(&bus).await?;
            tokio::time::sleep(Duration::from_secs(n)).await;
        }
        _ => return Err("usage: versioning-legacy (publish N | listen SECONDS)".into()),
    }
    demo::finish("legacy", &bridge).await;
    Ok(())
}
