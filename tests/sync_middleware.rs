//! Sync middleware (`SyncMiddleware` through `middleware::sync`): before and after hooks in
//! chain order, filters, transforms, panics, scope, and mixing with async middleware.

use eventbus_core::middleware::{self, EnvelopeMut, Flow, SyncMiddleware};
use eventbus_core::{Context, Event, EventBus, FailureKind, PublishReport, Refusal};
use std::sync::{Arc, Mutex};

#[derive(Event, Clone, Debug)]
struct Base {
    n: u32,
}

#[derive(Event, Clone, Debug)]
#[event(extends = Base)]
struct Derived {
    #[event(base)]
    base: Base,
}

#[derive(Event, Clone, Debug)]
struct Other;

type Log = Arc<Mutex<Vec<String>>>;

/// Logs its hooks; filters events whose `n` is `filter_at`, panics in `before` or `after`
/// when told to.
struct Probe {
    name: &'static str,
    log: Log,
    filter_at: Option<u32>,
    panic_before: bool,
    panic_after: bool,
}

fn probe(name: &'static str, log: &Log) -> Probe {
    Probe {
        name,
        log: log.clone(),
        filter_at: None,
        panic_before: false,
        panic_after: false,
    }
}

impl SyncMiddleware for Probe {
    fn name(&self) -> &str {
        self.name
    }

    fn before(&self, envelope: &mut EnvelopeMut<'_>) -> Flow {
        self.log
            .lock()
            .unwrap()
            .push(format!("{} before", self.name));
        assert!(!self.panic_before, "{} broke", self.name);
        if let Some(base) = envelope.event::<Base>() {
            if Some(base.n) == self.filter_at {
                return Flow::filter(format!("n = {}", base.n));
            }
        }
        Flow::Continue
    }

    fn after(&self, report: &mut PublishReport) {
        self.log.lock().unwrap().push(format!(
            "{} after (handled {})",
            self.name,
            report.handled()
        ));
        assert!(!self.panic_after, "{} broke after", self.name);
    }
}

fn logged(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

fn handler(bus: &EventBus, log: &Log) {
    let l = log.clone();
    bus.subscribe(move |e: &Base| l.lock().unwrap().push(format!("handler {}", e.n)))
        .forever();
}

#[tokio::test]
async fn hooks_run_before_in_order_and_after_in_reverse() {
    let log = Log::default();
    let bus = EventBus::builder()
        .middleware(middleware::sync(probe("a", &log)))
        .middleware(middleware::sync(probe("b", &log)))
        .build()
        .unwrap();
    handler(&bus, &log);
    assert!(bus.publish(Base { n: 1 }).await.is_ok());
    assert_eq!(
        logged(&log),
        [
            "a before",
            "b before",
            "handler 1",
            "b after (handled 1)",
            "a after (handled 1)"
        ]
    );
}

#[tokio::test]
async fn a_filter_keeps_the_event_from_the_handlers_and_outer_afters_still_run() {
    let log = Log::default();
    let bus = EventBus::builder()
        .middleware(middleware::sync(probe("outer", &log)))
        .middleware(middleware::sync(Probe {
            filter_at: Some(7),
            ..probe("gate", &log)
        }))
        .middleware(middleware::sync(probe("inner", &log)))
        .build()
        .unwrap();
    handler(&bus, &log);
    let report = bus.publish(Base { n: 7 }).await;
    assert_eq!(
        report.refusal(),
        Some(&Refusal::Filtered {
            middleware: "gate".into(),
            reason: "n = 7".into()
        })
    );
    assert_eq!(
        logged(&log),
        ["outer before", "gate before", "outer after (handled 0)"]
    );
}

#[tokio::test]
async fn hooks_change_the_event_and_its_headers_before_the_handlers() {
    struct Stamp;
    impl SyncMiddleware for Stamp {
        fn before(&self, envelope: &mut EnvelopeMut<'_>) -> Flow {
            envelope.headers_mut().insert("tenant", "acme");
            if let Some(base) = envelope.event_mut::<Base>() {
                base.n *= 10;
            }
            Flow::Continue
        }
    }
    let bus = EventBus::builder()
        .middleware(middleware::sync(Stamp))
        .build()
        .unwrap();
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    bus.subscribe(move |e: &Derived, ctx: Context| {
        *s.lock().unwrap() = Some((e.base.n, ctx.header("tenant").map(str::to_owned)));
    })
    .forever();
    assert!(bus
        .publish(Derived {
            base: Base { n: 4 }
        })
        .await
        .is_ok());
    assert_eq!(*seen.lock().unwrap(), Some((40, Some("acme".to_owned()))));
    // The default name is the type's own name.
    assert!(format!("{bus:?}").contains(r#"middleware: ["Stamp"]"#));
}

#[tokio::test]
async fn a_panic_before_is_a_failure_of_that_middleware_and_no_handler_runs() {
    let log = Log::default();
    let bus = EventBus::builder()
        .middleware(middleware::sync(probe("outer", &log)))
        .middleware(middleware::sync(Probe {
            panic_before: true,
            ..probe("broken", &log)
        }))
        .build()
        .unwrap();
    handler(&bus, &log);
    let report = bus.publish(Base { n: 1 }).await;
    assert_eq!(report.handled(), 0);
    let failure = &report.failures()[0];
    assert_eq!(failure.handler(), "broken");
    assert!(matches!(failure.kind(), FailureKind::Panic(m) if m == "broken broke"));
    assert_eq!(
        logged(&log),
        ["outer before", "broken before", "outer after (handled 0)"]
    );
    // The bus goes on.
    assert_eq!(bus.publish(Other).await.handled(), 0);
}

#[tokio::test]
async fn a_panic_after_is_recorded_and_the_outer_afters_still_run() {
    let log = Log::default();
    let bus = EventBus::builder()
        .middleware(middleware::sync(probe("outer", &log)))
        .middleware(middleware::sync(Probe {
            panic_after: true,
            ..probe("broken", &log)
        }))
        .build()
        .unwrap();
    handler(&bus, &log);
    let report = bus.publish(Base { n: 2 }).await;
    assert_eq!(report.handled(), 1);
    assert_eq!(report.failures().len(), 1);
    assert_eq!(report.failures()[0].handler(), "broken");
    assert_eq!(
        logged(&log),
        [
            "outer before",
            "broken before",
            "handler 2",
            "broken after (handled 1)",
            "outer after (handled 1)"
        ]
    );
}

#[tokio::test]
async fn sync_and_async_middleware_mix_in_the_order_added() {
    let log = Log::default();
    let l = log.clone();
    let around = middleware::from_fn("around", move |env, next: middleware::Next| {
        let l = l.clone();
        async move {
            l.lock().unwrap().push("around before".into());
            let report = next.run(env).await;
            l.lock().unwrap().push("around after".into());
            report
        }
    });
    let bus = EventBus::builder()
        .middleware(middleware::sync(probe("first", &log)))
        .middleware(around)
        .middleware(middleware::sync(probe("last", &log)))
        .build()
        .unwrap();
    handler(&bus, &log);
    // An async handler too: the hooks wait for it.
    let l = log.clone();
    bus.subscribe(move |_: &Base| {
        let l = l.clone();
        async move {
            tokio::task::yield_now().await;
            l.lock().unwrap().push("async handler".into());
        }
    })
    .forever();
    assert!(bus.publish(Base { n: 3 }).await.is_ok());
    assert_eq!(
        logged(&log),
        [
            "first before",
            "around before",
            "last before",
            "handler 3",
            "async handler",
            "last after (handled 2)",
            "around after",
            "first after (handled 2)"
        ]
    );
}

#[tokio::test]
async fn a_scoped_sync_middleware_sees_only_its_type_and_the_types_below() {
    let log = Log::default();
    let bus = EventBus::builder()
        .middleware_for::<Base>(middleware::sync(probe("base-only", &log)))
        .build()
        .unwrap();
    assert_eq!(bus.publish(Other).await.handled(), 0);
    assert!(logged(&log).is_empty());
    let report = bus
        .publish(Derived {
            base: Base { n: 1 },
        })
        .await;
    assert_eq!(report.handled(), 0);
    assert_eq!(
        logged(&log),
        ["base-only before", "base-only after (handled 0)"]
    );
}

#[tokio::test]
async fn hooks_run_for_emitted_events_and_follow_ups() {
    let log = Log::default();
    let bus = EventBus::builder()
        .middleware(middleware::sync(probe("m", &log)))
        .build()
        .unwrap();
    bus.subscribe(|e: &Base, ctx: Context| {
        if e.n == 1 {
            ctx.emit(Other).unwrap();
        }
    })
    .forever();
    bus.emit(Base { n: 1 }).unwrap();
    bus.shutdown().await;
    assert_eq!(
        logged(&log),
        [
            "m before",
            "m after (handled 1)",
            "m before",
            "m after (handled 0)"
        ]
    );
}
