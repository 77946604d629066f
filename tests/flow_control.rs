//! Concurrency and back-pressure: concurrent dispatch within a priority level, the emit cap,
//! `emit_wait`, and shutdown with a deadline. Nothing is lost silently.

use eventbus_core::{DispatchMode, EmitErrorKind, Event, EventBus, SubscribeOptions};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Barrier, Notify};

#[derive(Event, Clone, Debug)]
struct Order(u32);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_of_one_priority_run_concurrently_and_levels_stay_ordered() {
    let bus = EventBus::builder()
        .dispatch_mode(DispatchMode::ConcurrentWithinPriority)
        .build()
        .unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let log = Arc::new(Mutex::new(Vec::new()));
    for name in ["inventory", "email"] {
        let (barrier, log) = (barrier.clone(), log.clone());
        bus.subscribe_with(
            SubscribeOptions::new().name(name).priority(10),
            move |_: &Order| {
                let (barrier, log) = (barrier.clone(), log.clone());
                async move {
                    // Passes only if both handlers of this level run at the same time.
                    barrier.wait().await;
                    log.lock().unwrap().push(name);
                }
            },
        )
        .forever();
    }
    let l = log.clone();
    bus.subscribe_with(
        SubscribeOptions::new().name("analytics"),
        move |_: &Order| l.lock().unwrap().push("analytics"),
    )
    .forever();

    let report = tokio::time::timeout(Duration::from_secs(10), bus.publish(Order(1)))
        .await
        .expect("the two priority-10 handlers ran concurrently");
    assert!(report.is_ok());
    assert_eq!(report.handled(), 3);
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(
        log[2], "analytics",
        "the lower level runs after the higher one finished"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emit_flood_past_the_cap_is_refused_with_the_event_handed_back() {
    let bus = EventBus::builder().max_in_flight(8).build().unwrap();
    let gate = Arc::new(Notify::new());
    let handled = Arc::new(AtomicUsize::new(0));
    let (g, h) = (gate.clone(), handled.clone());
    let _sub = bus.subscribe(move |_: &Order| {
        let (g, h) = (g.clone(), h.clone());
        async move {
            g.notified().await;
            h.fetch_add(1, Ordering::SeqCst);
        }
    });
    let mut accepted = 0;
    let mut refused = Vec::new();
    for i in 0..100 {
        match bus.emit(Order(i)) {
            Ok(()) => accepted += 1,
            Err(error) => {
                assert_eq!(error.kind(), &EmitErrorKind::Full { capacity: 8 });
                refused.push(error.into_event().0);
            }
        }
    }
    assert_eq!(accepted, 8);
    assert_eq!(
        refused,
        (8..100).collect::<Vec<_>>(),
        "every refused event came back"
    );

    // Let the in-flight ones finish; emit_wait then gets room.
    let opener = tokio::spawn({
        let gate = gate.clone();
        async move {
            for _ in 0..200 {
                gate.notify_waiters();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });
    for i in 100..110 {
        bus.emit_wait(Order(i)).await.unwrap();
    }
    bus.shutdown().await;
    opener.abort();
    assert_eq!(
        handled.load(Ordering::SeqCst),
        18,
        "accepted = handled: nothing lost"
    );
}

#[tokio::test]
async fn shutdown_with_a_deadline_reports_what_did_not_finish() {
    let bus = EventBus::new();
    let _sub = bus.subscribe(|e: &Order| {
        let stuck = e.0 == 2;
        async move {
            if stuck {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        }
    });
    for i in 1..=3 {
        bus.emit(Order(i)).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let report = bus.shutdown_timeout(Duration::from_millis(50)).await;
    assert!(!report.is_complete());
    let unfinished: Vec<_> = report.unfinished().iter().map(|u| u.name).collect();
    assert_eq!(unfinished, ["flow_control::Order"]);
    assert!(
        bus.emit(Order(4)).is_err(),
        "no new work after shutdown began"
    );
}

#[tokio::test]
async fn shutdown_while_handlers_run_finishes_them() {
    let bus = EventBus::new();
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let _sub = bus.subscribe(move |_: &Order| {
        let d = d.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            d.fetch_add(1, Ordering::SeqCst);
        }
    });
    for i in 0..20 {
        bus.emit(Order(i)).unwrap();
    }
    let report = bus.shutdown_timeout(Duration::from_secs(30)).await;
    assert!(report.is_complete());
    assert_eq!(done.load(Ordering::SeqCst), 20);
}
