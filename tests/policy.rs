//! Failure policy: per-handler error callbacks, timeouts and retries; dead events; the failure
//! hook for emitted events.

use eventbus_core::{
    handler, Context, Event, EventBus, FailureKind, HandlerFailure, PublishReport, SubscribeOptions,
};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Event, Clone, Debug)]
#[event(name = "payment.captured")]
pub struct PaymentCaptured {
    cents: u64,
}

#[derive(Event, Clone, Debug)]
#[event(name = "nobody.listens")]
pub struct NobodyListens(u32);

static CALLBACKS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

fn page_oncall(failure: &HandlerFailure, ctx: Context) {
    let cents = ctx.downcast_ref::<PaymentCaptured>().map(|p| p.cents);
    CALLBACKS.lock().unwrap().push(format!(
        "{} failed on {} ({cents:?}) after {}: {failure}",
        failure.handler(),
        ctx.event_name(),
        failure.attempts()
    ));
}

fn callback_that_panics(_: &HandlerFailure, _: Context) {
    panic!("the callback itself is broken");
}

pub mod handlers {
    use super::*;

    #[handler(on_error = page_oncall)]
    fn ledger(e: &PaymentCaptured) -> Result<(), String> {
        if e.cents > 1_000 {
            Err("over the limit".into())
        } else {
            Ok(())
        }
    }

    #[handler(on_error = callback_that_panics, priority = -1)]
    fn fragile(_: &PaymentCaptured) -> Result<(), &'static str> {
        Err("always")
    }

    #[handler(timeout_ms = 20)]
    async fn slow_gateway(e: &PaymentCaptured) {
        if e.cents == 13 {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    }

    #[handler(retry = 3, backoff_ms = 1, on_error = page_oncall)]
    async fn flaky(e: &PaymentCaptured) -> Result<(), String> {
        let call = FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
        if e.cents == 7 && call < 3 {
            return Err(format!("transient failure {call}"));
        }
        if e.cents == 8 {
            return Err(format!("permanent failure {call}"));
        }
        Ok(())
    }
}

fn bus_with(name: &str) -> EventBus {
    EventBus::builder()
        .with_handler(&format!("policy::handlers::{name}"))
        .build()
        .unwrap()
}

#[tokio::test]
async fn on_error_gets_the_failure_and_the_event_and_its_panics_are_contained() {
    let bus = EventBus::builder()
        .with_handler("policy::handlers::ledger")
        .with_handler("policy::handlers::fragile")
        .build()
        .unwrap();
    let report = bus.publish(PaymentCaptured { cents: 5_000 }).await;
    assert_eq!(report.handled(), 2);
    assert_eq!(report.failures().len(), 2);
    let callbacks = CALLBACKS.lock().unwrap().clone();
    assert!(callbacks.contains(
        &"policy::handlers::ledger failed on payment.captured (Some(5000)) after 1: over the limit"
            .to_owned()
    ), "{callbacks:?}");
}

#[tokio::test]
async fn a_handler_past_its_timeout_is_cancelled_and_the_others_go_on() {
    let bus = bus_with("slow_gateway");
    let after = Arc::new(AtomicU32::new(0));
    let a = after.clone();
    let _after = bus.subscribe_with(
        SubscribeOptions::new().priority(-5),
        move |_: &PaymentCaptured| {
            a.fetch_add(1, Ordering::SeqCst);
        },
    );
    let report = tokio::time::timeout(
        Duration::from_secs(10),
        bus.publish(PaymentCaptured { cents: 13 }),
    )
    .await
    .expect("the timeout cancels the slow handler");
    assert_eq!(report.failures().len(), 1);
    assert_eq!(
        report.failures()[0].kind(),
        &FailureKind::TimedOut(Duration::from_millis(20))
    );
    assert_eq!(report.failures()[0].to_string(), "timed out after 20ms");
    assert_eq!(after.load(Ordering::SeqCst), 1);
    assert!(bus.publish(PaymentCaptured { cents: 1 }).await.is_ok());
}

#[tokio::test]
async fn the_bus_default_timeout_applies_to_handlers_without_their_own() {
    let bus = EventBus::builder()
        .handler_timeout(Duration::from_millis(10))
        .build()
        .unwrap();
    let _slow = bus.subscribe_with(
        SubscribeOptions::new().name("slow"),
        |_: &PaymentCaptured| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
        },
    );
    let _own = bus.subscribe_with(
        SubscribeOptions::new()
            .name("patient")
            .timeout(Duration::from_secs(5)),
        |_: &PaymentCaptured| async {
            tokio::time::sleep(Duration::from_millis(30)).await;
        },
    );
    let report = bus.publish(PaymentCaptured { cents: 1 }).await;
    let failed: Vec<_> = report
        .failures()
        .iter()
        .map(|f| (f.handler(), f.kind().clone()))
        .collect();
    assert_eq!(
        failed,
        [("slow", FailureKind::TimedOut(Duration::from_millis(10)))]
    );
}

#[tokio::test]
async fn retries_until_success_or_the_last_attempt() {
    let bus = bus_with("flaky");
    FLAKY_CALLS.store(0, Ordering::SeqCst);
    let report = bus.publish(PaymentCaptured { cents: 7 }).await;
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(
        FLAKY_CALLS.load(Ordering::SeqCst),
        3,
        "failed twice, then succeeded"
    );

    FLAKY_CALLS.store(0, Ordering::SeqCst);
    let report = bus.publish(PaymentCaptured { cents: 8 }).await;
    assert_eq!(FLAKY_CALLS.load(Ordering::SeqCst), 4, "1 try + 3 retries");
    let failure = &report.failures()[0];
    assert_eq!(failure.attempts(), 4);
    assert_eq!(failure.to_string(), "permanent failure 4");
}

#[tokio::test]
async fn retry_and_on_error_on_a_subscription() {
    let bus = EventBus::new();
    let attempts = Arc::new(AtomicU32::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let (a, f) = (attempts.clone(), failures.clone());
    let _sub = bus.subscribe_with(
        SubscribeOptions::new()
            .name("panicky")
            .retry(2, Duration::from_millis(1))
            .on_error(move |failure, ctx| {
                f.lock().unwrap().push(format!(
                    "{} {}: {failure}",
                    ctx.event_name(),
                    failure.attempts()
                ))
            }),
        move |_: &PaymentCaptured| -> () {
            a.fetch_add(1, Ordering::SeqCst);
            panic!("boom");
        },
    );
    let report = bus.publish(PaymentCaptured { cents: 1 }).await;
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert!(report.failures()[0].is_panic());
    assert_eq!(
        *failures.lock().unwrap(),
        ["payment.captured 3: panicked: boom"]
    );
}

#[tokio::test]
async fn dead_events_are_reported_and_handed_to_the_hook() {
    let dead = Arc::new(Mutex::new(Vec::new()));
    let d = dead.clone();
    let bus = EventBus::builder()
        .on_dead_event(move |ctx: Context| {
            let n = ctx.downcast_ref::<NobodyListens>().map(|e| e.0);
            d.lock().unwrap().push((ctx.event_name(), n));
        })
        .build()
        .unwrap();
    let report = bus.publish(NobodyListens(42)).await;
    assert!(report.is_ok());
    assert_eq!(report.handled(), 0);
    let _sub = bus.subscribe(|_: &PaymentCaptured| {});
    let _ = bus.publish(PaymentCaptured { cents: 1 }).await;
    assert_eq!(*dead.lock().unwrap(), [("nobody.listens", Some(42))]);
}

#[tokio::test]
async fn failures_of_emitted_events_reach_the_failure_hook() {
    let reports: Arc<Mutex<Vec<PublishReport>>> = Arc::default();
    let r = reports.clone();
    let bus = EventBus::builder()
        .on_failure(move |report| r.lock().unwrap().push(report.clone()))
        .build()
        .unwrap();
    let _sub = bus.subscribe_with(
        SubscribeOptions::new().name("ledger"),
        |e: &PaymentCaptured| {
            if e.cents % 2 == 1 {
                Err(format!("odd amount {}", e.cents))
            } else {
                Ok(())
            }
        },
    );
    for cents in 0..10 {
        bus.emit(PaymentCaptured { cents }).unwrap();
    }
    bus.shutdown().await;
    let mut failed: Vec<String> = reports
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.failures()[0].to_string())
        .collect();
    failed.sort();
    assert_eq!(
        failed,
        [
            "odd amount 1",
            "odd amount 3",
            "odd amount 5",
            "odd amount 7",
            "odd amount 9"
        ]
    );
}

#[test]
fn a_single_handler_bus_and_an_unknown_name() {
    let bus = bus_with("ledger");
    let names: Vec<_> = bus
        .handlers_for::<PaymentCaptured>()
        .iter()
        .map(|h| h.name().to_owned())
        .collect();
    assert_eq!(names, ["policy::handlers::ledger"]);

    let error = EventBus::builder()
        .with_handler("policy::handlers::ledgr")
        .build()
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot build the event bus:\n  - no `#[handler]` is named `policy::handlers::ledgr`: give its full name (its path, or its `name = \"..\"`); the registered handlers are: `policy::handlers::flaky`, `policy::handlers::fragile`, `policy::handlers::ledger`, `policy::handlers::slow_gateway`"
    );
}
