//! One `Handler` trait for closures and fns, sync and async, with the same parameters:
//! `Context`, `State<T>`, `OwnedContext`.

use eventbus_core::{Context, Event, EventBus, FailureKind, OwnedContext, State};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Event, Clone, Debug)]
struct Paid {
    cents: u64,
}

#[derive(Event, Clone, Debug)]
struct Receipt {
    cents: u64,
}

#[derive(Default)]
struct Ledger {
    total: AtomicU64,
}

struct Rate(u64);

fn bus() -> EventBus {
    EventBus::builder()
        .state(Ledger::default())
        .state(Rate(3))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_sync_closure_takes_state_with_or_without_context() {
    let bus = bus();
    bus.subscribe(|e: &Paid, ledger: State<Ledger>| {
        ledger.total.fetch_add(e.cents, Ordering::Relaxed);
    })
    .forever();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    bus.subscribe(
        move |e: &Paid, ctx: Context, ledger: State<Ledger>, rate: State<Rate>| {
            s.lock().unwrap().push((
                ctx.event_name(),
                e.cents * rate.0 .0,
                ledger.total.load(Ordering::Relaxed),
            ));
        },
    )
    .forever();
    assert!(bus.publish(Paid { cents: 5 }).await.is_ok());
    assert_eq!(*seen.lock().unwrap(), [("handler_shapes::Paid", 15, 5)]);
}

#[tokio::test]
async fn an_async_closure_publishes_through_its_owned_context_after_an_await() {
    let bus = bus();
    bus.subscribe(|e: &Paid, ctx: OwnedContext, rate: State<Rate>| {
        let cents = e.cents * rate.0 .0;
        async move {
            tokio::task::yield_now().await;
            ctx.publish(Receipt { cents }).await.into_result().map(drop)
        }
    })
    .forever();
    let receipts = Arc::new(Mutex::new(Vec::new()));
    let r = receipts.clone();
    bus.subscribe(move |e: &Receipt, ctx: Context| {
        r.lock().unwrap().push((
            e.cents,
            ctx.depth(),
            ctx.causation_id(),
            ctx.correlation_id(),
        ));
    })
    .forever();
    let report = bus.publish(Paid { cents: 2 }).await;
    assert!(report.is_ok());
    let id = report.event_id();
    assert_eq!(*receipts.lock().unwrap(), [(6, 1, Some(id), id)]);
}

async fn borrowing(e: &Paid, ctx: Context<'_>, ledger: State<Ledger>) {
    tokio::task::yield_now().await;
    // The event and the context are borrowed across the await.
    ledger
        .total
        .fetch_add(e.cents + u64::from(ctx.depth()), Ordering::Relaxed);
}

#[tokio::test]
async fn an_async_fn_borrows_its_event_and_context_across_awaits() {
    let ledger = Arc::new(Ledger::default());
    let bus = EventBus::builder()
        .state_arc(ledger.clone())
        .build()
        .unwrap();
    bus.subscribe(borrowing).forever();
    assert!(bus.publish(Paid { cents: 9 }).await.is_ok());
    assert_eq!(ledger.total.load(Ordering::Relaxed), 9);
}

#[tokio::test]
async fn a_state_the_builder_was_not_given_fails_every_call_naming_the_type() {
    let bus = EventBus::new();
    bus.subscribe(|_: &Paid, _: State<Ledger>| ()).forever();
    bus.subscribe(|_: &Paid, _: State<Rate>| async {}).forever();
    let report = bus.publish(Paid { cents: 1 }).await;
    assert_eq!(report.handled(), 2);
    let errors: Vec<String> = report
        .failures()
        .iter()
        .map(|failure| match failure.kind() {
            FailureKind::Error(message) => message.clone(),
            other => panic!("unexpected failure {other:?}"),
        })
        .collect();
    assert_eq!(errors.len(), 2);
    assert!(
        errors[0].contains("State<handler_shapes::Ledger>"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("State<handler_shapes::Rate>"),
        "{errors:?}"
    );
}

#[tokio::test]
async fn sync_and_async_closures_share_one_policy() {
    use eventbus_core::SubscribeOptions;
    use std::time::Duration;
    let bus = bus();
    let attempts = Arc::new(AtomicU64::new(0));
    let a = attempts.clone();
    bus.subscribe_with(
        SubscribeOptions::new()
            .name("flaky")
            .retry(2, Duration::from_millis(1)),
        move |_: &Paid, _: State<Rate>| {
            let a = a.clone();
            async move {
                if a.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err("not yet")
                } else {
                    Ok(())
                }
            }
        },
    )
    .forever();
    assert!(bus.publish(Paid { cents: 1 }).await.is_ok());
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
}
