//! A service on the new version of `catalog.price_changed`: version 2 holds the price in cents
//! with its currency. It keeps the version 1 type and an upcaster, so its handlers of version
//! 2 also receive what not-yet-upgraded producers send. Run it beside `versioning-legacy`;
//! `docs/versioning.md` walks through the migration.
//!
//! ```sh
//! cargo run --example versioning-current -- listen 10          # reads v1 and v2 for 10 s
//! cargo run --example versioning-current -- publish 3 --as-v1  # sends v2, on the wire as v1
//! cargo run --example versioning-current -- publish 3          # sends v2 as it is
//! ```

use eventbus_core::bridge::Bridge;
use eventbus_core::redis::{GroupStart, RedisTransport};
use eventbus_core::{upcast, Context, Event, EventBus};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[path = "demo.rs"]
mod demo;

use demo::{PRICES, REDIS_URL};

/// Version 1, kept while anyone may still send it.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(name = "catalog.price_changed", version = 1, distributed)]
struct PriceChangedV1 {
    sku: String,
    /// Euros.
    price: f64,
}

/// Version 2: integer cents and an explicit currency.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(name = "catalog.price_changed", version = 2, distributed)]
struct PriceChanged {
    sku: String,
    amount_cents: u64,
    currency: String,
}

/// Version 1 only ever held euros.
#[upcast]
fn price_v1_to_v2(old: &PriceChangedV1) -> PriceChanged {
    PriceChanged {
        sku: old.sku.clone(),
        amount_cents: (old.price * 100.0).round() as u64,
        currency: "EUR".into(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mode, n, rest) = demo::args();
    let as_v1 = rest.iter().any(|arg| arg == "--as-v1");
    let mut bridge = Bridge::builder(RedisTransport::new(REDIS_URL), "storefront")
        .durable::<PriceChanged>(PRICES)
        .group_start(GroupStart::Beginning);
    if as_v1 {
        // Until every consumer knows v2: what v1 cannot hold (the currency) is not sent.
        bridge = bridge.send_as(|e: &PriceChanged| PriceChangedV1 {
            sku: e.sku.clone(),
            price: e.amount_cents as f64 / 100.0,
        });
    }
    let bridge = bridge.build()?;
    let bus = EventBus::builder().middleware(bridge.outbound()).build()?;
    match mode.as_str() {
        "publish" => {
            bridge.start(&bus).await?;
            for i in 1..=n {
                let change = PriceChanged {
                    sku: format!("SKU-{}", 100 + i),
                    amount_cents: 1_000 * i + 99,
                    currency: "EUR".into(),
                };
                let wire = if as_v1 { "as v1" } else { "as v2" };
                println!(
                    "[current] sends {} at {} cents, {wire}",
                    change.sku, change.amount_cents
                );
                bus.publish(change).await.into_result().map(drop)?;
            }
        }
        "listen" => {
            // One handler, of the current version: it gets v1 senders' events upcast.
            bus.subscribe(|e: &PriceChanged, ctx: Context| {
                println!(
                    "[current] v2 {} at {} {} (sent as v{} by {:?})",
                    e.sku,
                    e.amount_cents,
                    e.currency,
                    ctx.meta().event_version(),
                    ctx.origin()
                );
            })
            .forever();
            bridge.start(&bus).await?;
            tokio::time::sleep(Duration::from_secs(n)).await;
        }
        _ => return Err("usage: versioning-current (publish N [--as-v1] | listen SECONDS)".into()),
    }
    demo::finish("current", &bridge).await;
    Ok(())
}
