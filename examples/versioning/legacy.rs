//! A service not yet upgraded: it knows `catalog.price_changed` at version 1 only (a price in
//! euros as a float), publishes it, and reads it. Run it beside `versioning-current`, which
//! knows versions 1 and 2; `docs/versioning.md` walks through the migration.
//!
//! ```sh
//! cargo run --example versioning-legacy -- publish 3    # sends 3 v1 price changes
//! cargo run --example versioning-legacy -- listen 10    # reads price changes for 10 s
//! ```

use eventbus_core::redis::{GroupStart, RedisBridge};
use eventbus_core::{Context, Event, EventBus};
use serde::{Deserialize, Serialize};
use std::time::Duration;

const REDIS_URL: &str = "redis://127.0.0.1:6379/";
const PRICES: &str = "demo:catalog:prices";

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
    let mut args = std::env::args().skip(1);
    let (mode, n) = (
        args.next().unwrap_or_default(),
        args.next().unwrap_or_default(),
    );
    let n: u64 = n.parse().unwrap_or(3);
    let bridge = RedisBridge::builder(REDIS_URL, "legacy-search")
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
    let report = bridge.shutdown().await;
    let d = bridge.diagnostics();
    println!(
        "[legacy] sent {}, handled {}, newer versions it cannot read: {}, unsent at exit: {}",
        d.sent,
        d.dispatched,
        d.newer_version,
        report.unsent().len()
    );
    Ok(())
}
