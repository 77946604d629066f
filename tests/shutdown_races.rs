//! Shutdown racing the work it must wait for: an emit accepted is handled before `shutdown`
//! resolves or is refused, never `Ok` and then lost. Each race runs thousands of rounds on two
//! worker threads and asserts zero losses.

use eventbus_core::{Context, EmitErrorKind, Event, EventBus, Refusal};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Barrier, Notify};

#[derive(Event, Debug)]
struct Job(#[allow(dead_code)] u32);

#[derive(Event, Debug)]
struct FollowUp;

const ROUNDS: u32 = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emits_racing_shutdown_are_handled_before_shutdown_returns_or_refused() {
    for round in 0..ROUNDS {
        // A small cap keeps each round short: the emitter yields while the bus is full.
        let bus = EventBus::builder().max_in_flight(16).build().unwrap();
        let handled = Arc::new(AtomicUsize::new(0));
        let h = handled.clone();
        bus.subscribe(move |_: &Job| {
            h.fetch_add(1, Ordering::SeqCst);
        })
        .forever();
        let start = Arc::new(Barrier::new(2));
        // Emits until refused, so every round has emits on both sides of the shutdown.
        let emitter = {
            let (bus, start) = (bus.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let mut accepted = 0;
                loop {
                    match bus.emit(Job(round)) {
                        Ok(()) => accepted += 1,
                        Err(e) if matches!(e.kind(), EmitErrorKind::Full { .. }) => {
                            tokio::task::yield_now().await;
                        }
                        Err(e) => {
                            assert_eq!(e.kind(), &EmitErrorKind::Refused(Refusal::ShutDown));
                            return accepted;
                        }
                    }
                }
            })
        };
        let stopper = {
            let (bus, start) = (bus.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                for _ in 0..round % 7 {
                    tokio::task::yield_now().await;
                }
                bus.shutdown().await;
            })
        };
        stopper.await.unwrap();
        // `shutdown` has returned: whatever `emit` accepted must have been handled by now.
        let handled_at_shutdown = handled.load(Ordering::SeqCst);
        let accepted = emitter.await.unwrap();
        assert_eq!(
            handled_at_shutdown, accepted,
            "round {round}: emit returned Ok for events whose handlers had not run when shutdown returned"
        );
    }
}

static GATE: Notify = Notify::const_new();
static FOLLOW_UP_OUTCOME: AtomicUsize = AtomicUsize::new(0);

/// Waits for the gate, then emits a follow-up: records 1 when accepted, 2 when refused as shut
/// down, 3 for any other error.
async fn late_emitter(_: &Job, ctx: Context<'_>) {
    GATE.notified().await;
    let outcome = match ctx.emit(FollowUp) {
        Ok(()) => 1,
        Err(e) if e.kind() == &EmitErrorKind::Refused(Refusal::ShutDown) => 2,
        Err(_) => 3,
    };
    FOLLOW_UP_OUTCOME.store(outcome, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_emitted_after_shutdown_returned_is_refused_like_a_plain_emit() {
    let bus = EventBus::new();
    let _sub = bus.subscribe(late_emitter);
    let follow_ups = Arc::new(AtomicUsize::new(0));
    let f = follow_ups.clone();
    let _count = bus.subscribe(move |_: &FollowUp| {
        f.fetch_add(1, Ordering::SeqCst);
    });
    // A publish whose handler is still running when shutdown returns (a publish is awaited by
    // its caller, not by shutdown).
    let publish = tokio::spawn({
        let bus = bus.clone();
        async move { bus.publish(Job(1)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    bus.shutdown().await;
    GATE.notify_one();
    assert!(publish.await.unwrap().is_ok());
    assert_eq!(
        FOLLOW_UP_OUTCOME.load(Ordering::SeqCst),
        2,
        "the follow-up must be refused as shut down (1 = accepted and lost)"
    );
    assert_eq!(follow_ups.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_ups_of_emitted_work_racing_shutdown_are_all_handled() {
    // Emitted work that emits a follow-up while shutdown drains: the follow-up belongs to work
    // shutdown awaits, so it is accepted and handled before shutdown returns.
    for round in 0..1_000 {
        let bus = EventBus::new();
        let followed = Arc::new(AtomicUsize::new(0));
        bus.subscribe(|_: &Job, ctx: Context| {
            ctx.emit(FollowUp).expect("accepted while draining");
        })
        .forever();
        let f = followed.clone();
        bus.subscribe(move |_: &FollowUp| {
            f.fetch_add(1, Ordering::SeqCst);
        })
        .forever();
        let accepted = bus.emit(Job(round)).is_ok() as usize;
        bus.shutdown().await;
        assert_eq!(followed.load(Ordering::SeqCst), accepted, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emit_wait_parked_on_a_full_bus_is_released_when_shutdown_begins() {
    let bus = EventBus::builder().max_in_flight(1).build().unwrap();
    let release = Arc::new(Notify::new());
    let r = release.clone();
    let _slow = bus.subscribe(move |_: &Job| {
        let r = r.clone();
        async move { r.notified().await }
    });
    bus.emit(Job(1)).unwrap(); // takes the only slot until released
    let parked = tokio::spawn({
        let bus = bus.clone();
        async move { bus.emit_wait(Job(2)).await.map_err(|e| e.kind().clone()) }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!parked.is_finished(), "emit_wait waits for room");
    let shutdown = tokio::spawn({
        let bus = bus.clone();
        async move { bus.shutdown().await }
    });
    let outcome = tokio::time::timeout(Duration::from_secs(5), parked)
        .await
        .expect("emit_wait returns promptly once shutdown begins, not at the next free slot")
        .unwrap();
    assert_eq!(outcome, Err(EmitErrorKind::Refused(Refusal::ShutDown)));
    release.notify_one();
    shutdown.await.unwrap();
}

/// The drain task of the emit queue ends whenever it finds the queue empty; an emit at that
/// moment must start a new one (or be seen by the ending one), never be left in the queue.
/// One event at a time, so that nearly every emit meets a drain task that is ending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emit_racing_the_end_of_the_drain_task_is_never_stranded() {
    let bus = EventBus::new();
    let handled = Arc::new(AtomicUsize::new(0));
    let h = handled.clone();
    bus.subscribe(move |_: &Job| {
        h.fetch_add(1, Ordering::SeqCst);
    })
    .forever();
    for round in 0..ROUNDS * 20 {
        // Right after the previous event was handled: the drain task is about to find the
        // queue empty and end. Varying gaps move the emit across that moment.
        for _ in 0..round % 8 {
            std::hint::spin_loop();
        }
        bus.emit(Job(round)).unwrap();
        let wanted = round as usize + 1;
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            while handled.load(Ordering::SeqCst) < wanted {
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "round {round}: an emitted event was stranded in the queue"
        );
    }
    bus.shutdown().await;
    assert_eq!(handled.load(Ordering::SeqCst), (ROUNDS * 20) as usize);
}
