//! An e-commerce order flow on the in-process bus: no server needed.
//!
//! `cargo run --example orders`
//!
//! Shows a three-level event hierarchy, `#[handler]` fns in priority order (validation first,
//! analytics last), an audit handler on the root type that sees every event, shared state,
//! a follow-up event published from a handler, a failing handler (retried, then reported
//! through its `on_error` callback) while the others still run, middleware (a tenant header,
//! an authorization filter, metrics), a dead-event hook, a runtime subscription, and
//! fire-and-forget `emit` with a graceful shutdown.

use eventbus_core::middleware::{self, Authorize, Envelope, Metrics, Next};
use eventbus_core::{handler, Context, Event, EventBus, HandlerFailure, PublishReport, State};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

// ---- Events -------------------------------------------------------------------------------

/// Root of every event in the shop.
#[derive(Event, Clone, Debug)]
pub struct DomainEvent {
    pub at_ms: u64,
}

/// Anything that happens to an order.
#[derive(Event, Clone, Debug)]
#[event(extends = DomainEvent)]
pub struct OrderEvent {
    #[event(base)]
    pub base: DomainEvent,
    pub order_id: String,
}

#[derive(Event, Clone, Debug)]
#[event(extends = OrderEvent, name = "orders.placed", version = 1)]
pub struct OrderPlaced {
    #[event(base)]
    pub base: OrderEvent,
    pub email: String,
    pub sku: String,
    pub quantity: u32,
    pub amount_cents: u64,
}

#[derive(Event, Clone, Debug)]
#[event(extends = OrderEvent, name = "orders.stock_reserved")]
pub struct StockReserved {
    #[event(base)]
    pub base: OrderEvent,
    pub sku: String,
    pub left: u32,
}

/// Outside the order hierarchy, and nobody handles it: the dead-event hook reports it.
#[derive(Event, Clone, Debug)]
#[event(name = "catalog.price_changed")]
pub struct PriceChanged {
    pub sku: String,
    pub cents: u64,
}

#[derive(Event, Clone, Debug)]
#[event(extends = OrderEvent, name = "orders.cancelled")]
pub struct OrderCancelled {
    #[event(base)]
    pub base: OrderEvent,
    pub reason: String,
}

// ---- Shared state -------------------------------------------------------------------------

pub struct Inventory {
    stock: Mutex<HashMap<String, u32>>,
}

#[derive(Default)]
pub struct Mailer {
    sent: AtomicU64,
}

#[derive(Default)]
pub struct Analytics {
    orders: AtomicU64,
    revenue_cents: AtomicU64,
}

// ---- Handlers, in the order they run for an OrderPlaced ------------------------------------

#[handler(priority = 100)]
fn validate(e: &OrderPlaced) -> Result<(), String> {
    if e.quantity == 0 {
        return Err(format!("order {} has no items", e.base.order_id));
    }
    if !e.email.contains('@') {
        return Err(format!(
            "order {}: invalid email {:?}",
            e.base.order_id, e.email
        ));
    }
    Ok(())
}

#[handler(priority = 50, publishes = [StockReserved])]
async fn reserve_stock(
    e: &OrderPlaced,
    ctx: Context,
    inventory: State<Inventory>,
) -> Result<(), String> {
    let left = {
        let mut stock = inventory.stock.lock().unwrap();
        let on_hand = stock
            .get_mut(&e.sku)
            .ok_or(format!("unknown sku {}", e.sku))?;
        *on_hand = on_hand
            .checked_sub(e.quantity)
            .ok_or(format!("only {on_hand} of {} left", e.sku))?;
        *on_hand
    };
    // A follow-up: shares this order's correlation id, records OrderPlaced as its cause.
    let report = ctx
        .publish(StockReserved {
            base: order(&e.base.order_id),
            sku: e.sku.clone(),
            left,
        })
        .await;
    report.into_result().map(drop).map_err(|e| e.to_string())
}

fn alert_support(failure: &HandlerFailure, ctx: Context) {
    println!(
        "  [on_error] {} gave up after {} attempts on {}: {failure}",
        failure.handler(),
        failure.attempts(),
        ctx.event_name()
    );
}

#[handler(retry = 2, backoff_ms = 5, timeout_ms = 2_000, on_error = alert_support)]
async fn send_confirmation(e: &OrderPlaced, mailer: State<Mailer>) -> Result<(), std::io::Error> {
    tokio::task::yield_now().await; // stands in for the SMTP round trip
    if e.email.ends_with("@bounce.example") {
        return Err(std::io::Error::other(format!(
            "mailbox {} rejected the message",
            e.email
        )));
    }
    mailer.sent.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

#[handler(priority = -100)]
fn record_sale(e: &OrderPlaced, analytics: State<Analytics>) {
    analytics.orders.fetch_add(1, Ordering::Relaxed);
    analytics
        .revenue_cents
        .fetch_add(e.amount_cents, Ordering::Relaxed);
}

/// On the root type: sees every event, follow-ups included.
#[handler(priority = 1000)]
fn audit(e: &DomainEvent, ctx: Context) {
    let order = ctx
        .downcast_ref::<OrderEvent>()
        .map(|o| format!(" order={}", o.order_id))
        .unwrap_or_default();
    println!(
        "  [audit] {:<22} depth={} at={}{} tenant={} correlation={}",
        ctx.event_name(),
        ctx.depth(),
        e.at_ms,
        order,
        ctx.header("tenant").unwrap_or("-"),
        ctx.correlation_id(),
    );
}

#[handler]
fn low_stock_alert(e: &StockReserved) {
    if e.left < 2 {
        println!("  [stock] only {} x {} left: reorder", e.left, e.sku);
    }
}

// ---- The flow -----------------------------------------------------------------------------

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn order(order_id: &str) -> OrderEvent {
    OrderEvent {
        base: DomainEvent { at_ms: now_ms() },
        order_id: order_id.to_owned(),
    }
}

fn placed(order_id: &str, email: &str, quantity: u32) -> OrderPlaced {
    OrderPlaced {
        base: order(order_id),
        email: email.to_owned(),
        sku: "KB-42".to_owned(),
        quantity,
        amount_cents: 4_900 * u64::from(quantity),
    }
}

fn show(report: &PublishReport) {
    let verdict = if report.is_ok() {
        "ok"
    } else {
        "with failures"
    };
    println!(
        "  => {} handlers ran, {} succeeded: {verdict}",
        report.handled(),
        report.succeeded()
    );
    for failure in report.failures() {
        println!("     ! {} failed: {failure}", failure.handler());
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let inventory = Inventory {
        stock: Mutex::new(HashMap::from([("KB-42".to_owned(), 3)])),
    };
    // The metrics middleware records through the `metrics` facade: a real service installs
    // an exporter (Prometheus, StatsD); this demo keeps the numbers in memory to print them.
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install()?;
    let bus = EventBus::builder()
        .with_registered_handlers()
        .state(inventory)
        .state(Mailer::default())
        .state(Analytics::default())
        .max_depth(8)
        .middleware(Metrics::new())
        // Stamps every top-level event; follow-ups inherit the header from their cause.
        .middleware(middleware::from_fn(
            "tenant",
            |mut env: Envelope, next: Next| async move {
                if env.header("tenant").is_none() {
                    env.headers_mut().insert("tenant", "shop-eu");
                }
                next.run(env).await
            },
        ))
        // Support tools mark their cancellations; the filter below checks the header.
        .middleware_for::<OrderCancelled>(middleware::from_fn(
            "actor-from-payload",
            |mut env: Envelope, next: Next| async move {
                if let Some(reason) = env.event::<OrderCancelled>().map(|c| c.reason.clone()) {
                    if reason.starts_with("support:") {
                        env.headers_mut().insert("actor", "support");
                    }
                }
                next.run(env).await
            },
        ))
        // Only support staff may cancel orders.
        .middleware_for::<OrderCancelled>(Authorize::new(|env: &Envelope| {
            let actor = env.header("actor").map(str::to_owned);
            async move {
                match actor.as_deref() {
                    Some("support") => Ok(()),
                    other => Err(format!("actor {other:?} may not cancel orders")),
                }
            }
        }))
        .on_dead_event(|ctx: Context| {
            println!(
                "  [dead-event] nobody handles {} ({})",
                ctx.event_name(),
                ctx.event_id()
            )
        })
        // Who publishes what, for the topology and its check.
        .publisher::<OrderPlaced>("checkout")
        .publisher::<OrderCancelled>("support desk")
        .publisher::<PriceChanged>("catalog")
        .build()?;

    println!("The bus, as a Mermaid diagram (`bus.topology().to_mermaid()`):\n");
    print!("{}", bus.topology().to_mermaid());
    // The check a CI test runs: PriceChanged has a publisher but no handler.
    if let Err(gaps) = bus.topology().check() {
        println!("\n{gaps}\n");
    }

    println!("Dispatch order for orders.placed:");
    for (i, h) in bus.handlers_for::<OrderPlaced>().iter().enumerate() {
        println!(
            "  {}. {:<36} priority {:>5}  (handles {})",
            i + 1,
            h.name(),
            h.priority(),
            h.event_type().name()
        );
    }

    println!("\nA good order:");
    show(&bus.publish(placed("A-1001", "ada@example.com", 2)).await);

    println!("\nAn order whose confirmation mail bounces (retried, then isolated):");
    show(&bus.publish(placed("A-1002", "bob@bounce.example", 1)).await);

    println!(
        "\nAn empty order: validation fails, and since handlers are isolated the rest still ran:"
    );
    show(&bus.publish(placed("A-1003", "cy@example.com", 0)).await);

    println!("\nAn event nobody handles:");
    show(
        &bus.publish(PriceChanged {
            sku: "KB-42".into(),
            cents: 4_500,
        })
        .await,
    );

    println!("\nA runtime subscription; the authorization filter lets only support cancel:");
    let cancellations = bus.subscribe(|e: &OrderCancelled, ctx: Context| {
        println!(
            "  [support] {} cancelled: {} ({})",
            e.base.order_id,
            e.reason,
            ctx.event_id()
        );
    });
    let denied = bus
        .publish(OrderCancelled {
            base: order("A-1001"),
            reason: "changed my mind".into(),
        })
        .await;
    println!("  => {}", describe_refusal(&denied));

    println!("\nFire-and-forget emit, then a graceful shutdown:");
    bus.emit(OrderCancelled {
        base: order("A-1002"),
        reason: "support: mailbox bounced".into(),
    })?;
    bus.shutdown().await; // waits until the emitted event is handled
    drop(cancellations);

    println!("\nAfter shutdown, publishing is refused:");
    let refused = bus.publish(placed("A-1004", "dee@example.com", 1)).await;
    println!("  => {}", describe_refusal(&refused));

    println!("\nMetrics, as an exporter would see them:");
    let mut lines: Vec<String> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let value = match value {
                DebugValue::Counter(n) => n.to_string(),
                DebugValue::Gauge(g) => g.to_string(),
                DebugValue::Histogram(samples) => format!("{} samples", samples.len()),
            };
            format!("  {}{{{}}} {value}", key.name(), labels.join(","))
        })
        .collect();
    lines.sort();
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

fn describe_refusal(report: &PublishReport) -> String {
    report
        .refusal()
        .map(ToString::to_string)
        .unwrap_or_default()
}
