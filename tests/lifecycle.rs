//! Fire-and-forget `emit`, graceful `shutdown`, runtime subscriptions, concurrent publishers.

use eventbus_core::{Context, EmitErrorKind, Event, EventBus, Refusal, Subscription};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Barrier;

#[derive(Event, Debug)]
struct Job(u32);

#[derive(Event, Debug)]
struct Step(u32);

fn counter(bus: &EventBus) -> (Arc<AtomicUsize>, Subscription) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let sub = bus.subscribe(move |_: &Job| {
        let c = c.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            c.fetch_add(1, Ordering::SeqCst);
        }
    });
    (count, sub)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_every_emitted_event() {
    let bus = EventBus::new();
    let (count, _sub) = counter(&bus);
    for i in 0..500 {
        bus.emit(Job(i)).unwrap();
    }
    bus.shutdown().await;
    assert_eq!(count.load(Ordering::SeqCst), 500);
}

#[tokio::test]
async fn shutdown_waits_for_follow_ups_emitted_while_draining() {
    let bus = EventBus::new();
    let steps = Arc::new(AtomicUsize::new(0));
    let _chain = bus.subscribe(|e: &Step, ctx: Context| {
        if e.0 < 10 {
            ctx.emit(Step(e.0 + 1))
                .expect("follow-ups of in-flight work are accepted");
        }
    });
    let s = steps.clone();
    let _count = bus.subscribe(move |_: &Step| {
        s.fetch_add(1, Ordering::SeqCst);
    });
    bus.emit(Step(0)).unwrap();
    bus.shutdown().await;
    assert_eq!(steps.load(Ordering::SeqCst), 11);
}

#[tokio::test]
async fn after_shutdown_new_events_are_refused_with_an_error() {
    let bus = EventBus::new();
    let (count, _sub) = counter(&bus);
    bus.shutdown().await;
    assert!(bus.is_shut_down());
    let error = bus.emit(Job(1)).unwrap_err();
    assert_eq!(error.kind(), &EmitErrorKind::Refused(Refusal::ShutDown));
    assert_eq!(error.into_event().0, 1);
    let report = bus.publish(Job(2)).await;
    assert_eq!(report.refusal(), Some(&Refusal::ShutDown));
    assert!(!report.is_ok());
    assert_eq!(report.handled(), 0);
    assert_eq!(count.load(Ordering::SeqCst), 0);
}

#[test]
fn emit_outside_a_runtime_is_an_error_not_a_panic() {
    let bus = EventBus::new();
    let error = bus.emit(Job(1)).unwrap_err();
    assert_eq!(error.kind(), &EmitErrorKind::NoRuntime);
    assert_eq!(
        error.to_string(),
        "event not emitted: no tokio runtime is running"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_do_not_serialize_on_handler_calls() {
    // Both publishes must be inside the handler at once to pass the barrier; a lock held
    // across handler calls would deadlock here (the timeout turns that into a failure).
    let bus = EventBus::new();
    let barrier = Arc::new(Barrier::new(2));
    async fn meet(_: &Job, barrier: Arc<Barrier>) {
        barrier.wait().await;
    }
    let b = barrier.clone();
    let _sub = bus.subscribe(move |e: &Job| {
        let b = b.clone();
        let job = Job(e.0);
        async move { meet(&job, b).await }
    });
    let (a, b) = tokio::time::timeout(
        Duration::from_secs(10),
        futures_join(bus.publish(Job(1)), bus.publish(Job(2))),
    )
    .await
    .expect("two publishes run their handlers concurrently");
    assert!(a.is_ok() && b.is_ok());
}

async fn futures_join<A: std::future::Future, B: std::future::Future>(
    a: A,
    b: B,
) -> (A::Output, B::Output) {
    tokio::join!(a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_publishes_from_many_tasks_are_all_handled() {
    let bus = EventBus::new();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let _sub = bus.subscribe(move |_: &Job| {
        c.fetch_add(1, Ordering::Relaxed);
    });
    let tasks: Vec<_> = (0..100)
        .map(|t| {
            let bus = bus.clone();
            tokio::spawn(async move {
                let mut handled = 0;
                for i in 0..100 {
                    handled += bus.publish(Job(t * 100 + i)).await.handled();
                }
                handled
            })
        })
        .collect();
    let mut handled = 0;
    for task in tasks {
        handled += task.await.unwrap();
    }
    assert_eq!(handled, 10_000);
    assert_eq!(count.load(Ordering::Relaxed), 10_000);
}

#[tokio::test]
async fn subscriptions_made_and_dropped_while_publishing_stay_consistent() {
    let bus = EventBus::new();
    let count = Arc::new(AtomicUsize::new(0));
    for round in 0..50 {
        let c = count.clone();
        let sub = bus.subscribe(move |_: &Job| {
            c.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(bus.publish(Job(round)).await.handled(), 1);
        drop(sub);
        assert_eq!(bus.publish(Job(round)).await.handled(), 0);
    }
    assert_eq!(count.load(Ordering::SeqCst), 50);
}

#[tokio::test]
async fn a_subscription_outliving_its_bus_drops_quietly() {
    let bus = EventBus::new();
    let sub = bus.subscribe(|_: &Job| {});
    drop(bus);
    assert!(!sub.unsubscribe());
}

#[tokio::test]
async fn a_detached_context_publishes_after_an_await_with_the_same_lineage() {
    use std::sync::Mutex;
    let bus = EventBus::new();
    let _job = bus.subscribe(|_: &Job, ctx: Context<'_>| {
        let ctx = ctx.detach();
        async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let report = ctx.publish(Step(1)).await;
            assert_eq!(report.handled(), 1);
            ctx.emit(Step(2)).expect("accepted while the bus runs");
        }
    });
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let _step = bus.subscribe(move |e: &Step, ctx: Context| {
        s.lock()
            .unwrap()
            .push((e.0, ctx.causation_id(), ctx.correlation_id(), ctx.depth()));
    });
    let report = bus.publish(Job(7)).await;
    assert!(report.is_ok(), "{report:?}");
    bus.shutdown().await;
    let id = report.event_id();
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_by_key(|s| s.0);
    assert_eq!(seen, [(1, Some(id), id, 1), (2, Some(id), id, 1)]);
}

#[tokio::test]
async fn a_detached_context_cannot_emit_once_shutdown_began() {
    let bus = EventBus::new();
    let detached = Arc::new(std::sync::Mutex::new(None));
    let d = detached.clone();
    let _job = bus.subscribe(move |_: &Job, ctx: Context| {
        *d.lock().unwrap() = Some(ctx.detach());
    });
    bus.emit(Job(1)).unwrap();
    bus.shutdown().await;
    let ctx = detached.lock().unwrap().take().expect("the handler ran");
    let error = ctx.emit(Step(1)).unwrap_err();
    assert_eq!(error.kind(), &EmitErrorKind::Refused(Refusal::ShutDown));
    assert_eq!(error.into_event().0, 1);
}

/// A sync counter of `Step` events (sync handlers take the queued path of `emit`).
fn step_counter(bus: &EventBus) -> Arc<AtomicUsize> {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    bus.subscribe(move |_: &Step| {
        c.fetch_add(1, Ordering::SeqCst);
    })
    .forever();
    count
}

#[test]
fn emitted_events_left_by_a_runtime_that_shut_down_run_at_the_next_shutdown() {
    let bus = EventBus::new();
    let count = step_counter(&bus);
    let first = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    first.block_on(async {
        for i in 0..1_000 {
            bus.emit(Step(i)).unwrap();
        }
        // Lets the drain task run part of its batch, until its budget makes it yield.
        while count.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
    });
    // The runtime goes away with the drain task in the middle of a batch.
    drop(first);
    let ran = count.load(Ordering::SeqCst);
    assert!(
        (1..1_000).contains(&ran),
        "the drain task was stopped mid-batch ({ran} ran)"
    );
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    second.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), bus.shutdown())
            .await
            .expect("shutdown runs what the first runtime left, and returns");
    });
    assert_eq!(count.load(Ordering::SeqCst), 1_000, "each event ran once");
}

#[test]
fn emitted_events_queued_on_a_runtime_that_shut_down_run_at_the_next_emit() {
    let bus = EventBus::new();
    let count = step_counter(&bus);
    let first = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // The drain task is spawned but never polled.
    first.block_on(async {
        for i in 0..10 {
            bus.emit(Step(i)).unwrap();
        }
    });
    drop(first);
    assert_eq!(count.load(Ordering::SeqCst), 0);
    let second = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    second.block_on(async {
        bus.emit(Step(10)).unwrap();
        while count.load(Ordering::SeqCst) < 11 {
            tokio::task::yield_now().await;
        }
        bus.shutdown().await;
    });
    assert_eq!(count.load(Ordering::SeqCst), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_deadline_lists_the_queued_events_behind_a_stuck_sync_handler() {
    let bus = EventBus::new();
    // Blocking barriers: the test body runs on its own thread, the handler on a worker.
    let (started, release) = (
        Arc::new(std::sync::Barrier::new(2)),
        Arc::new(std::sync::Barrier::new(2)),
    );
    let count = Arc::new(AtomicUsize::new(0));
    let (s, r, c) = (started.clone(), release.clone(), count.clone());
    bus.subscribe(move |e: &Step| {
        if e.0 == 0 {
            // Holds the drain task (and its worker thread) until the test lets it go.
            s.wait();
            r.wait();
        }
        c.fetch_add(1, Ordering::SeqCst);
    })
    .forever();
    let mut ids = Vec::new();
    for i in 0..5 {
        bus.emit(Step(i)).unwrap();
    }
    started.wait();
    let report = bus.shutdown_timeout(Duration::from_millis(50)).await;
    for event in report.unfinished() {
        assert_eq!(event.name, "lifecycle::Step");
        ids.push(event.id);
    }
    assert_eq!(ids.len(), 5, "the running event and the 4 queued behind it");
    ids.dedup();
    assert_eq!(ids.len(), 5, "distinct ids");
    // They go on in the background: released, all five run.
    release.wait();
    tokio::time::timeout(Duration::from_secs(10), bus.shutdown())
        .await
        .unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 5);
}
