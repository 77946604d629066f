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

// Async handlers awaited one after another have their futures built in one buffer per
// publish (see `handler/in_place.rs`): these tests drive that path through panics,
// cancellation and futures of different sizes.

/// Counts the drops of the futures that hold one.
struct DropCount(Arc<AtomicU64>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn async_handlers_with_small_and_large_futures_keep_their_state_across_awaits() {
    let bus = bus();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    // A future with almost nothing in it...
    bus.subscribe(move |e: &Paid| {
        let s = s.clone();
        let cents = e.cents;
        async move {
            tokio::task::yield_now().await;
            s.lock().unwrap().push(("small", cents));
        }
    })
    .forever();
    // ...then one holding 4 KiB across an await, larger than the buffer a smaller one used.
    let s = seen.clone();
    bus.subscribe(move |e: &Paid| {
        let s = s.clone();
        let cents = e.cents;
        async move {
            let buffer = [cents as u8; 4096];
            tokio::task::yield_now().await;
            let sum: u64 = buffer.iter().map(|&b| u64::from(b)).sum();
            s.lock().unwrap().push(("large", sum / 4096));
        }
    })
    .forever();
    for cents in 1..=50 {
        assert!(bus.publish(Paid { cents }).await.is_ok());
    }
    let seen = seen.lock().unwrap();
    let expected: Vec<_> = (1..=50)
        .flat_map(|c| [("small", c), ("large", c)])
        .collect();
    assert_eq!(*seen, expected);
}

#[tokio::test]
async fn an_async_handler_panicking_before_or_after_an_await_fails_alone() {
    let bus = bus();
    let ran = Arc::new(AtomicU64::new(0));
    let drops = Arc::new(AtomicU64::new(0));
    let d = drops.clone();
    bus.subscribe(move |e: &Paid| {
        let guard = DropCount(d.clone());
        let cents = e.cents;
        async move {
            let _guard = guard;
            if cents == 1 {
                panic!("before the await");
            }
            tokio::task::yield_now().await;
            if cents == 2 {
                panic!("after the await");
            }
        }
    })
    .forever();
    let r = ran.clone();
    bus.subscribe(move |_: &Paid| {
        let r = r.clone();
        async move {
            tokio::task::yield_now().await;
            r.fetch_add(1, Ordering::SeqCst);
        }
    })
    .forever();
    for (cents, message) in [
        (1, Some("before the await")),
        (2, Some("after the await")),
        (3, None),
    ] {
        let report = bus.publish(Paid { cents }).await;
        match message {
            Some(message) => {
                assert_eq!(report.failures().len(), 1, "{report:?}");
                assert_eq!(
                    report.failures()[0].kind(),
                    &FailureKind::Panic(message.into())
                );
            }
            None => assert!(report.is_ok(), "{report:?}"),
        }
    }
    assert_eq!(
        ran.load(Ordering::SeqCst),
        3,
        "the other handler ran every time"
    );
    assert_eq!(drops.load(Ordering::SeqCst), 3, "each future dropped once");
}

#[tokio::test]
async fn a_publish_cancelled_mid_handler_drops_the_handlers_future_once() {
    let bus = bus();
    let drops = Arc::new(AtomicU64::new(0));
    let started = Arc::new(tokio::sync::Notify::new());
    let d = drops.clone();
    let st = started.clone();
    bus.subscribe(move |_: &Paid| {
        let guard = DropCount(d.clone());
        let st = st.clone();
        async move {
            let _guard = guard;
            st.notify_one();
            std::future::pending::<()>().await;
        }
    })
    .forever();
    for round in 1..=100 {
        let publish = bus.publish(Paid { cents: round });
        tokio::select! {
            _ = publish => unreachable!("the handler never finishes"),
            _ = started.notified() => {}
        }
        assert_eq!(drops.load(Ordering::SeqCst), round, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tasks_publishing_to_async_handlers_at_once_lose_nothing() {
    let bus = bus();
    let total = Arc::new(AtomicU64::new(0));
    for _ in 0..3 {
        let t = total.clone();
        bus.subscribe(move |e: &Paid, ctx: OwnedContext| {
            let t = t.clone();
            let cents = e.cents;
            async move {
                tokio::task::yield_now().await;
                assert_eq!(ctx.event_name(), "handler_shapes::Paid");
                t.fetch_add(cents, Ordering::Relaxed);
            }
        })
        .forever();
    }
    let rounds = 5_000u64;
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let bus = bus.clone();
            tokio::spawn(async move {
                for cents in 1..=rounds {
                    assert!(bus.publish(Paid { cents }).await.is_ok());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let per_task = rounds * (rounds + 1) / 2;
    assert_eq!(total.load(Ordering::Relaxed), 2 * 3 * per_task);
}
