//! What both versioning programs share: where the stream is, how they read their arguments,
//! and how they report on the way out. Their event types are their own: that is the point.

use eventbus_core::bridge::Bridge;

pub const REDIS_URL: &str = "redis://127.0.0.1:6379/";
pub const PRICES: &str = "demo:catalog:prices";

/// `(mode, number, rest)`: `publish N ..` or `listen SECONDS`; the number defaults to 3.
pub fn args() -> (String, u64, Vec<String>) {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let n = args.next().and_then(|n| n.parse().ok()).unwrap_or(3);
    (mode, n, args.collect())
}

/// Shuts the bridge down and prints what it did.
pub async fn finish(service: &str, bridge: &Bridge) {
    let report = bridge.shutdown().await;
    let d = bridge.diagnostics();
    println!(
        "[{service}] sent {}, handled {}, newer versions it cannot read: {}, unsent at exit: {}",
        d.sent,
        d.dispatched,
        d.newer_version,
        report.unsent().len()
    );
}
