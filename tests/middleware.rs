//! Middleware: order, filter, transform, wrap, scope, async checks, panics, and the
//! ready-made logging, authorization and metrics middleware.

use eventbus_core::middleware::{self, Authorize, Envelope, Logging, Metrics, Next};
use eventbus_core::{Context, Event, EventBus, FailureKind, Refusal};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Event, Clone, Debug)]
#[event(name = "domain")]
struct DomainEvent {
    actor: String,
}

#[derive(Event, Clone, Debug)]
#[event(extends = DomainEvent, name = "user.registered")]
struct UserRegistered {
    #[event(base)]
    base: DomainEvent,
    email: String,
}

#[derive(Event, Clone, Debug)]
#[event(name = "welcome.sent")]
struct WelcomeSent;

#[derive(Event, Clone, Debug)]
#[event(name = "heartbeat")]
struct Heartbeat;

fn registered(actor: &str) -> UserRegistered {
    UserRegistered {
        base: DomainEvent {
            actor: actor.into(),
        },
        email: "ada@example.com".into(),
    }
}

type Log = Arc<Mutex<Vec<String>>>;

fn tracer(name: &'static str, log: &Log) -> impl middleware::Middleware {
    let log = log.clone();
    middleware::from_fn(name, move |env: Envelope, next: Next| {
        let log = log.clone();
        async move {
            log.lock()
                .unwrap()
                .push(format!("{name} before {}", env.event_name()));
            let report = next.run(env).await;
            log.lock()
                .unwrap()
                .push(format!("{name} after, handled {}", report.handled()));
            report
        }
    })
}

#[tokio::test]
async fn middleware_runs_in_registration_order_around_the_handlers() {
    let log: Log = Arc::default();
    let bus = EventBus::builder()
        .middleware(tracer("outer", &log))
        .middleware(tracer("inner", &log))
        .build()
        .unwrap();
    let l = log.clone();
    let _sub = bus.subscribe(move |_: &Heartbeat| l.lock().unwrap().push("handler".into()));
    assert!(bus.publish(Heartbeat).await.is_ok());
    assert_eq!(
        *log.lock().unwrap(),
        [
            "outer before heartbeat",
            "inner before heartbeat",
            "handler",
            "inner after, handled 1",
            "outer after, handled 1",
        ]
    );
}

#[tokio::test]
async fn a_filter_stops_the_event_and_the_report_names_it() {
    let log: Log = Arc::default();
    let bus = EventBus::builder()
        .middleware(middleware::from_fn(
            "spam-filter",
            |env: Envelope, next: Next| async move {
                if env
                    .event::<DomainEvent>()
                    .is_some_and(|d| d.actor == "spammer")
                {
                    return env.filter("actor is a known spammer");
                }
                next.run(env).await
            },
        ))
        .middleware(tracer("after-filter", &log))
        .build()
        .unwrap();
    let l = log.clone();
    let _sub = bus.subscribe(move |_: &UserRegistered| l.lock().unwrap().push("handler".into()));

    let report = bus.publish(registered("spammer")).await;
    assert!(!report.is_ok());
    assert_eq!(report.handled(), 0);
    assert_eq!(
        report.filtered(),
        Some(("spam-filter", "actor is a known spammer"))
    );
    assert_eq!(
        report.refusal().unwrap().to_string(),
        "filtered by middleware `spam-filter`: actor is a known spammer"
    );
    assert!(
        log.lock().unwrap().is_empty(),
        "nothing after the filter ran"
    );

    assert!(bus.publish(registered("ada")).await.is_ok());
    assert_eq!(log.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_transform_changes_the_event_and_headers_that_handlers_and_follow_ups_see() {
    let bus = EventBus::builder()
        .middleware(middleware::from_fn(
            "redact",
            |mut env: Envelope, next: Next| async move {
                if let Some(user) = env.event_mut::<UserRegistered>() {
                    user.email = "<redacted>".into();
                }
                if let Some(domain) = env.event_mut::<DomainEvent>() {
                    domain.actor = domain.actor.to_uppercase();
                }
                if env.depth() == 0 {
                    env.headers_mut().insert("tenant", "acme");
                }
                next.run(env).await
            },
        ))
        .build()
        .unwrap();
    let seen: Log = Arc::default();
    let s = seen.clone();
    let _user = bus.subscribe(move |e: &UserRegistered, ctx: Context<'_>| {
        s.lock().unwrap().push(format!(
            "{} {} tenant={:?}",
            e.email,
            e.base.actor,
            ctx.header("tenant")
        ));
        let emitted = ctx.emit(WelcomeSent).is_ok();
        async move { assert!(emitted) }
    });
    let s = seen.clone();
    let _welcome = bus.subscribe(move |_: &WelcomeSent, ctx: Context| {
        s.lock()
            .unwrap()
            .push(format!("welcome tenant={:?}", ctx.header("tenant")));
    });
    assert!(bus.publish(registered("ada")).await.is_ok());
    bus.shutdown().await;
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "<redacted> ADA tenant=Some(\"acme\")",
            "welcome tenant=Some(\"acme\")" // inherited from its cause
        ]
    );
}

#[tokio::test]
async fn scoped_middleware_applies_to_its_type_and_derived_types_only() {
    let log: Log = Arc::default();
    let bus = EventBus::builder()
        .middleware_for::<DomainEvent>(tracer("domain-only", &log))
        .build()
        .unwrap();
    let _ = bus.publish(registered("ada")).await;
    let _ = bus.publish(DomainEvent { actor: "x".into() }).await;
    let _ = bus.publish(Heartbeat).await;
    assert_eq!(
        *log.lock().unwrap(),
        [
            "domain-only before user.registered",
            "domain-only after, handled 0",
            "domain-only before domain",
            "domain-only after, handled 0",
        ]
    );
}

#[tokio::test]
async fn an_async_authorization_check_filters_unauthorized_events() {
    async fn permission_lookup(actor: String) -> bool {
        tokio::time::sleep(Duration::from_millis(2)).await; // stands in for a permission service
        actor == "admin"
    }
    let bus = EventBus::builder()
        .middleware_for::<DomainEvent>(Authorize::new(|env: &Envelope| {
            let actor = env.event::<DomainEvent>().map(|d| d.actor.clone());
            async move {
                match actor {
                    Some(actor) if permission_lookup(actor.clone()).await => Ok(()),
                    Some(actor) => Err(format!("{actor} may not register users")),
                    None => Err("no actor".into()),
                }
            }
        }))
        .build()
        .unwrap();
    let _sub = bus.subscribe(|_: &UserRegistered| {});
    assert_eq!(bus.publish(registered("admin")).await.handled(), 1);
    let denied = bus.publish(registered("mallory")).await;
    assert_eq!(
        denied.filtered(),
        Some(("authorize", "mallory may not register users"))
    );
    assert_eq!(bus.publish(Heartbeat).await.refusal(), None, "out of scope");
}

#[tokio::test]
async fn a_panicking_middleware_is_reported_and_the_bus_goes_on() {
    let bus = EventBus::builder()
        .middleware(middleware::from_fn(
            "flaky",
            |env: Envelope, next: Next| async move {
                if env.event_name() == "heartbeat" {
                    panic!("middleware bug");
                }
                next.run(env).await
            },
        ))
        .build()
        .unwrap();
    let _sub = bus.subscribe(|_: &WelcomeSent| {});
    let report = bus.publish(Heartbeat).await;
    assert!(!report.is_ok());
    assert_eq!(report.handled(), 0);
    let failure = &report.failures()[0];
    assert!(failure.is_middleware());
    assert_eq!(failure.handler(), "flaky");
    assert_eq!(failure.kind(), &FailureKind::Panic("middleware bug".into()));
    assert!(bus.publish(WelcomeSent).await.is_ok());
}

#[tokio::test]
async fn a_middleware_that_never_calls_next_must_filter_so_nothing_is_silent() {
    let bus = EventBus::builder()
        .middleware(middleware::from_fn(
            "black-hole",
            |env: Envelope, _next: Next| async move { env.filter("swallowed on purpose") },
        ))
        .build()
        .unwrap();
    let _sub =
        bus.subscribe(|_: &Heartbeat| -> () { unreachable!("filtered events reach no handler") });
    let report = bus.publish(Heartbeat).await;
    assert_eq!(
        report.refusal(),
        Some(&Refusal::Filtered {
            middleware: "black-hole".into(),
            reason: "swallowed on purpose".into()
        })
    );
}

#[test]
fn metrics_count_events_and_outcomes_and_record_latency_through_the_facade() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use metrics_util::MetricKind;

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let bus = EventBus::builder()
                .middleware(Metrics::new())
                .build()
                .unwrap();
            let _ok = bus.subscribe(|_: &UserRegistered| {});
            let _fails = bus.subscribe_with(
                eventbus_core::SubscribeOptions::new().name("crm-sync"),
                |e: &UserRegistered| {
                    if e.base.actor == "bad" {
                        Err("crm down")
                    } else {
                        Ok(())
                    }
                },
            );
            for actor in ["a", "bad", "c", "bad"] {
                let _ = bus.publish(registered(actor)).await;
            }
            let _ = bus.publish(Heartbeat).await;
        });
    });

    let mut values = std::collections::BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let (kind, key) = (key.kind(), key.key());
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let value = match value {
            DebugValue::Counter(n) => n.to_string(),
            DebugValue::Histogram(samples) => format!("{} samples", samples.len()),
            DebugValue::Gauge(g) => g.to_string(),
        };
        assert!(matches!(kind, MetricKind::Counter | MetricKind::Histogram));
        values.insert(format!("{}{{{}}}", key.name(), labels.join(",")), value);
    }
    let get = |k: &str| values.get(k).map(String::as_str);
    assert_eq!(
        get("eventbus_events_published_total{event=user.registered}"),
        Some("4"),
        "{values:#?}"
    );
    assert_eq!(
        get("eventbus_handler_calls_total{event=user.registered}"),
        Some("8")
    );
    assert_eq!(
        get("eventbus_handler_failures_total{event=user.registered,handler=crm-sync}"),
        Some("2")
    );
    assert_eq!(
        get("eventbus_publish_duration_seconds{event=user.registered}"),
        Some("4 samples")
    );
    assert_eq!(
        get("eventbus_events_published_total{event=heartbeat}"),
        Some("1")
    );
    assert_eq!(
        get("eventbus_events_unhandled_total{event=heartbeat}"),
        Some("1")
    );
}

#[tokio::test]
async fn logging_opens_a_span_per_publish_and_per_handler() {
    let (buffer, _guard) = capture_logs(tracing::Level::DEBUG);

    let bus = EventBus::builder()
        .middleware(Logging::new())
        .build()
        .unwrap();
    let _sub = bus.subscribe_with(
        eventbus_core::SubscribeOptions::new().name("mailer"),
        |_: &UserRegistered| Err("smtp down"),
    );
    let report = bus.publish(registered("ada")).await;
    let output = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
    let id = report.event_id().to_string();
    assert!(
        output.contains("publish{event=\"user.registered\""),
        "{output}"
    );
    assert!(output.contains(&format!("id={id}")), "{output}");
    assert!(output.contains("handler{handler=mailer"), "{output}");
    assert!(output.contains("outcome=\"failed\""), "{output}");
    assert!(output.contains("handler failed"), "{output}");
    assert!(output.contains("smtp down"), "{output}");
    assert!(output.contains("published with failures"), "{output}");
}

#[tokio::test]
async fn a_middleware_returning_a_report_it_did_not_get_for_this_event_is_named_in_a_refusal() {
    // A "cache" that answers every event after the first with the first event's report.
    let cached: Arc<Mutex<Option<eventbus_core::PublishReport>>> = Arc::default();
    let c = cached.clone();
    let bus = EventBus::builder()
        .middleware(middleware::from_fn("outer", |env: Envelope, next: Next| {
            next.run(env)
        }))
        .middleware(middleware::from_fn(
            "cache",
            move |env: Envelope, next: Next| {
                let c = c.clone();
                async move {
                    let kept = c.lock().unwrap().clone();
                    match kept {
                        Some(report) => report,
                        None => {
                            let report = next.run(env).await;
                            *c.lock().unwrap() = Some(report.clone());
                            report
                        }
                    }
                }
            },
        ))
        .build()
        .unwrap();
    let seen = Arc::new(Mutex::new(0));
    let s = seen.clone();
    let _sub = bus.subscribe(move |_: &Heartbeat| *s.lock().unwrap() += 1);

    let first = bus.publish(Heartbeat).await;
    assert!(first.is_ok() && first.handled() == 1);
    let second = bus.publish(Heartbeat).await;
    assert_eq!(
        *seen.lock().unwrap(),
        1,
        "the second event reached no handler"
    );
    assert!(!second.is_ok(), "the caller must not see success");
    assert_eq!(second.handled(), 0);
    assert_ne!(second.event_id(), first.event_id());
    assert_eq!(
        second.refusal(),
        Some(&Refusal::Swallowed {
            middleware: "cache".into()
        })
    );
    assert!(second
        .into_result()
        .unwrap_err()
        .to_string()
        .contains("middleware `cache` returned a report that was not this event's"));
}

#[tokio::test]
async fn headers_given_at_publish_reach_middleware_handlers_and_follow_ups() {
    let bus = EventBus::builder()
        .middleware(middleware::from_fn("check", |env: Envelope, next: Next| {
            let tenant = env.header("tenant").map(str::to_owned);
            async move {
                match tenant.as_deref() {
                    Some("acme") => next.run(env).await,
                    _ => env.filter("no tenant"),
                }
            }
        }))
        .build()
        .unwrap();
    let seen: Log = Arc::default();
    let s = seen.clone();
    let _a = bus.subscribe(move |_: &Heartbeat, ctx: Context| {
        s.lock().unwrap().push(format!(
            "heartbeat {:?} {:?}",
            ctx.header("tenant"),
            ctx.header("trace")
        ));
        let follow = eventbus_core::Headers::from_iter([("trace", "t-2")]);
        ctx.emit_with(WelcomeSent, follow).unwrap();
    });
    let s = seen.clone();
    let _b = bus.subscribe(move |_: &WelcomeSent, ctx: Context| {
        s.lock().unwrap().push(format!(
            "welcome {:?} {:?}",
            ctx.header("tenant"),
            ctx.header("trace")
        ));
    });
    let headers = eventbus_core::Headers::from_iter([("tenant", "acme"), ("trace", "t-1")]);
    assert!(bus.publish_with(Heartbeat, headers.clone()).await.is_ok());
    bus.emit_with(Heartbeat, headers).unwrap();
    assert_eq!(
        bus.publish(Heartbeat).await.filtered(),
        Some(("check", "no tenant"))
    );
    bus.shutdown().await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter()
            .filter(|l| *l == r#"heartbeat Some("acme") Some("t-1")"#)
            .count(),
        2
    );
    assert_eq!(
        seen.iter()
            .filter(|l| *l == r#"welcome Some("acme") Some("t-2")"#)
            .count(),
        2,
        "follow-ups inherit headers, and headers given to emit_with override them: {seen:?}"
    );
}

#[tokio::test]
async fn an_authorization_layer_takes_a_name() {
    let bus = EventBus::builder()
        .middleware(Authorize::named("admins-only", |_: &Envelope| async {
            Err::<(), _>("not an admin".to_owned())
        }))
        .build()
        .unwrap();
    assert_eq!(
        bus.publish(Heartbeat).await.filtered(),
        Some(("admins-only", "not an admin"))
    );
    assert!(format!("{bus:?}").contains("admins-only"));
}

#[tokio::test]
async fn an_emitted_events_handlers_run_inside_the_emitters_span() {
    let (buffer, _guard) = capture_logs(tracing::Level::INFO);

    let bus = EventBus::new();
    let _sub = bus.subscribe(|_: &Heartbeat| async { tracing::info!("beat handled") });
    {
        let _request = tracing::info_span!("request", id = 42).entered();
        bus.emit(Heartbeat).unwrap();
    }
    bus.shutdown().await;
    let output = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
    assert!(
        output.contains("request{id=42}: ") && output.contains("beat handled"),
        "{output}"
    );
}

/// Collects what `tracing` writes on this thread, at `level` and above, until the guard drops.
fn capture_logs(level: tracing::Level) -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (buffer.0, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn plain_sync_handlers_run_in_handler_spans_when_debug_tracing_is_on() {
    let (buffer, _guard) = capture_logs(tracing::Level::DEBUG);
    let bus = EventBus::new();
    let _ok = bus.subscribe_with(
        eventbus_core::SubscribeOptions::new().name("audit"),
        |_: &Heartbeat| {
            tracing::debug!("audited");
        },
    );
    let _bad = bus.subscribe_with(
        eventbus_core::SubscribeOptions::new().name("pager"),
        |_: &Heartbeat| Err("pager down"),
    );
    let _panics = bus.subscribe_with(
        eventbus_core::SubscribeOptions::new().name("flaky"),
        |_: &Heartbeat| -> Result<(), String> { panic!("flaky bug") },
    );
    let report = bus.publish(Heartbeat).await;
    assert_eq!((report.handled(), report.failures().len()), (3, 2));
    let output = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
    for expected in [
        "handler{handler=audit",
        "audited",
        "handler{handler=pager",
        "pager down",
        "handler{handler=flaky",
        "flaky bug",
        "outcome=\"failed\"",
    ] {
        assert!(output.contains(expected), "{expected} in:\n{output}");
    }
}
