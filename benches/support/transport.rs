//! Shared by the transport benches: the event they send (stamped with its publish time), and
//! the statistics they report.

use eventbus_core::Event;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

#[derive(Event, Clone, Serialize, Deserialize)]
#[event(name = "bench.order_placed", distributed)]
pub struct OrderPlaced {
    pub order_id: u64,
    pub customer: String,
    pub amount_cents: u64,
    /// Nanoseconds since the bench's epoch when it was published.
    pub at_ns: u64,
}

/// The bench's time origin.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

pub fn order(order_id: u64) -> OrderPlaced {
    OrderPlaced {
        order_id,
        customer: "customer-0042".into(),
        amount_cents: 12_999,
        at_ns: epoch().elapsed().as_nanos() as u64,
    }
}

/// How long ago, by the bench's epoch, the event was published.
pub fn age(event: &OrderPlaced) -> Duration {
    let now = epoch().elapsed().as_nanos() as u64;
    Duration::from_nanos(now.saturating_sub(event.at_ns))
}

pub fn median<T: PartialOrd + Copy>(mut values: Vec<T>) -> T {
    values.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    values[values.len() / 2]
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A bus whose events `bridge` sends (its outbound middleware added), not started yet.
pub fn bridged(bridge: &eventbus_core::bridge::Bridge) -> eventbus_core::EventBus {
    eventbus_core::EventBus::builder()
        .middleware(bridge.outbound())
        .build()
        .unwrap()
}
