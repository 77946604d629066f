//! Errors never escape sideways: an `Err` or a panic, sync or async, is recorded with the
//! handler's name and every other handler still runs.

use eventbus_core::{handler, Event, EventBus, FailureKind, SubscribeOptions};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Event, Debug)]
pub struct Charge {
    cents: u64,
}

mod handlers {
    use super::*;

    #[handler(priority = 4)]
    fn rejects_small(e: &Charge) -> Result<(), std::io::Error> {
        if e.cents < 100 {
            Err(std::io::Error::other(format!(
                "{} cents is below the minimum",
                e.cents
            )))
        } else {
            Ok(())
        }
    }

    #[handler(priority = 3)]
    fn panics_sync(_: &Charge) {
        panic!("sync handler exploded");
    }

    #[handler(priority = 2)]
    async fn panics_async(_: &Charge) {
        tokio::task::yield_now().await;
        let detail = 42;
        panic!("async handler exploded after await ({detail})");
    }

    #[handler(priority = 1)]
    async fn fails_async(_: &Charge) -> Result<(), String> {
        tokio::task::yield_now().await;
        Err("gateway unreachable".to_owned())
    }
}

#[tokio::test]
async fn every_failure_is_recorded_and_the_rest_still_run() {
    let bus = EventBus::builder()
        .with_registered_handlers_from("failures::handlers")
        .build()
        .unwrap();
    let last = Arc::new(AtomicUsize::new(0));
    let seen = last.clone();
    let _sub = bus.subscribe_with(
        SubscribeOptions::new().priority(-1).name("last"),
        move |_: &Charge| {
            seen.fetch_add(1, Ordering::SeqCst);
        },
    );

    let report = bus.publish(Charge { cents: 5 }).await;
    assert!(!report.is_ok());
    assert_eq!(report.handled(), 5);
    assert_eq!(report.succeeded(), 1);
    assert_eq!(
        last.load(Ordering::SeqCst),
        1,
        "the handler after the failures still ran"
    );

    let failures: Vec<(&str, &FailureKind)> = report
        .failures()
        .iter()
        .map(|f| (f.handler(), f.kind()))
        .collect();
    assert_eq!(
        failures,
        [
            (
                "failures::handlers::rejects_small",
                &FailureKind::Error("5 cents is below the minimum".into())
            ),
            (
                "failures::handlers::panics_sync",
                &FailureKind::Panic("sync handler exploded".into())
            ),
            (
                "failures::handlers::panics_async",
                &FailureKind::Panic("async handler exploded after await (42)".into())
            ),
            (
                "failures::handlers::fails_async",
                &FailureKind::Error("gateway unreachable".into())
            ),
        ]
    );
    assert!(report.failures()[1].is_panic());
    assert_eq!(
        report.failures()[2].to_string(),
        "panicked: async handler exploded after await (42)"
    );

    let error = report.into_result().unwrap_err();
    assert!(error
        .to_string()
        .starts_with("4 of 5 handlers of failures::Charge failed"));

    // The bus is still fully usable afterwards.
    let report = bus.publish(Charge { cents: 500 }).await;
    assert_eq!(report.failures().len(), 3);
    assert_eq!(last.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn panicking_closures_are_contained_too() {
    let bus = EventBus::new();
    let _sync = bus.subscribe_with(SubscribeOptions::new().name("sync"), |_: &Charge| -> () {
        panic!("closure panic")
    });
    let _async = bus.subscribe_with(SubscribeOptions::new().name("async"), |e: &Charge| {
        let cents = e.cents;
        async move {
            tokio::task::yield_now().await;
            if cents > 0 {
                panic!("async closure panic {cents}");
            }
        }
    });
    let report = bus.publish(Charge { cents: 1 }).await;
    let failures: Vec<String> = report
        .failures()
        .iter()
        .map(|f| format!("{}: {f}", f.handler()))
        .collect();
    assert_eq!(
        failures,
        [
            "sync: panicked: closure panic",
            "async: panicked: async closure panic 1"
        ]
    );
}

#[tokio::test]
async fn failures_of_emitted_events_do_not_take_the_bus_down() {
    let bus = EventBus::new();
    let after = Arc::new(AtomicUsize::new(0));
    let counter = after.clone();
    let _boom = bus.subscribe_with(SubscribeOptions::new().priority(1), |_: &Charge| -> () {
        panic!("emitted handler panic")
    });
    let _count = bus.subscribe(move |_: &Charge| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    for cents in 0..50 {
        bus.emit(Charge { cents }).unwrap();
    }
    bus.shutdown().await;
    assert_eq!(after.load(Ordering::SeqCst), 50);
}

/// A run of sync handlers: several fail in a row, in different ways. Each failure is recorded
/// in order, with its callback called, and every handler after it still runs, whether or not
/// debug tracing (which takes the per-handler span path) is on.
#[tokio::test]
async fn consecutive_sync_failures_are_each_recorded_with_and_without_tracing() {
    async fn run_once() -> (Vec<String>, usize, usize) {
        let bus = EventBus::new();
        let ran = Arc::new(AtomicUsize::new(0));
        let callbacks = Arc::new(AtomicUsize::new(0));
        let mut subs = Vec::new();
        for (i, kind) in ["ok", "panic", "panic", "err", "ok", "panic"]
            .iter()
            .enumerate()
        {
            let ran = ran.clone();
            let callbacks = callbacks.clone();
            let options = SubscribeOptions::new()
                .name(format!("{i}-{kind}"))
                .on_error(move |_, _| {
                    callbacks.fetch_add(1, Ordering::SeqCst);
                });
            subs.push(bus.subscribe_with(options, move |_: &Charge| {
                ran.fetch_add(1, Ordering::SeqCst);
                match *kind {
                    "panic" => panic!("handler {i} panicked"),
                    "err" => Err(format!("handler {i} failed")),
                    _ => Ok(()),
                }
            }));
        }
        let report = bus.publish(Charge { cents: 1 }).await;
        assert_eq!(report.handled(), 6);
        let failures = report
            .failures()
            .iter()
            .map(|f| format!("{}: {f}", f.handler()))
            .collect();
        (
            failures,
            ran.load(Ordering::SeqCst),
            callbacks.load(Ordering::SeqCst),
        )
    }

    let expected = vec![
        "1-panic: panicked: handler 1 panicked".to_owned(),
        "2-panic: panicked: handler 2 panicked".to_owned(),
        "3-err: handler 3 failed".to_owned(),
        "5-panic: panicked: handler 5 panicked".to_owned(),
    ];
    assert_eq!(run_once().await, (expected.clone(), 6, 4));

    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(std::io::sink)
        .finish();
    let _tracing = tracing::subscriber::set_default(subscriber);
    assert_eq!(run_once().await, (expected, 6, 4));
}
