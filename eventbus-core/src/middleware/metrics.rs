//! [`Metrics`]: counts events and handler outcomes and records publish latency through the
//! [`metrics`](https://docs.rs/metrics) facade, so any exporter (Prometheus, StatsD, ...)
//! plugs in.

use super::{BoxFuture, Envelope, Middleware, Next};
use crate::PublishReport;
use std::time::Instant;

/// Records every publish through the `metrics` facade: whatever recorder the application
/// installed (`metrics-exporter-prometheus`, `metrics-exporter-statsd`, ...) receives the
/// numbers. Without a recorder each call is a no-op. Every metric has the label `event` (the
/// event name); failures also have `handler`.
///
/// | metric | kind | what |
/// |---|---|---|
/// | `eventbus_events_published_total` | counter | publishes that reached this middleware |
/// | `eventbus_handler_calls_total` | counter | handler calls, successful or not |
/// | `eventbus_handler_failures_total` | counter | handler calls that failed (label `handler`) |
/// | `eventbus_events_unhandled_total` | counter | publishes that reached no handler (dead events) |
/// | `eventbus_events_refused_total` | counter | publishes refused or filtered after this middleware |
/// | `eventbus_publish_duration_seconds` | histogram | publish latency, measured around the rest of the chain |
///
/// Add it first to count events that a later filter drops. Needs the `metrics` feature.
///
/// ```
/// use eventbus_core::{middleware::Metrics, Event, EventBus};
/// use metrics_util::debugging::{DebugValue, DebuggingRecorder};
///
/// #[derive(Event)]
/// #[event(name = "ping")]
/// struct Ping;
///
/// let recorder = DebuggingRecorder::new(); // in production: an exporter's recorder
/// let snapshotter = recorder.snapshotter();
/// metrics::with_local_recorder(&recorder, || {
///     let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
///     runtime.block_on(async {
///         let bus = EventBus::builder().middleware(Metrics::new()).build().unwrap();
///         let _sub = bus.subscribe(|_: &Ping| {});
///         assert!(bus.publish(Ping).await.is_ok());
///     });
/// });
/// let published = snapshotter.snapshot().into_vec().into_iter().find_map(|(key, _, _, value)| {
///     (key.key().name() == "eventbus_events_published_total").then_some(value)
/// });
/// assert_eq!(published, Some(DebugValue::Counter(1)));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    _private: (),
}

impl Metrics {
    /// The metrics middleware. Describes its metrics (units and help texts) to the recorder
    /// installed at that moment.
    pub fn new() -> Self {
        ::metrics::describe_counter!(
            "eventbus_events_published_total",
            "Publishes that reached the metrics middleware."
        );
        ::metrics::describe_counter!(
            "eventbus_handler_calls_total",
            "Handler calls, successful or not."
        );
        ::metrics::describe_counter!(
            "eventbus_handler_failures_total",
            "Handler calls that returned an error, panicked or timed out."
        );
        ::metrics::describe_counter!(
            "eventbus_events_unhandled_total",
            "Publishes that reached no handler (dead events)."
        );
        ::metrics::describe_counter!(
            "eventbus_events_refused_total",
            "Publishes refused or filtered after the metrics middleware."
        );
        ::metrics::describe_histogram!(
            "eventbus_publish_duration_seconds",
            ::metrics::Unit::Seconds,
            "Publish latency, around the rest of the middleware chain and the handlers."
        );
        Metrics { _private: () }
    }
}

fn record(event: &'static str, report: &PublishReport, started: Instant) {
    ::metrics::counter!("eventbus_events_published_total", "event" => event).increment(1);
    ::metrics::counter!("eventbus_handler_calls_total", "event" => event)
        .increment(report.handled() as u64);
    for failure in report.failures().iter().filter(|f| !f.is_middleware()) {
        let handler = failure.handler().to_owned();
        ::metrics::counter!("eventbus_handler_failures_total", "event" => event, "handler" => handler)
            .increment(1);
    }
    if report.refusal().is_some() {
        ::metrics::counter!("eventbus_events_refused_total", "event" => event).increment(1);
    } else if report.is_unhandled() {
        ::metrics::counter!("eventbus_events_unhandled_total", "event" => event).increment(1);
    }
    ::metrics::histogram!("eventbus_publish_duration_seconds", "event" => event)
        .record(started.elapsed().as_secs_f64());
}

impl Middleware for Metrics {
    fn name(&self) -> &str {
        "metrics"
    }

    fn handle(&self, envelope: Envelope, next: Next) -> BoxFuture<'static, PublishReport> {
        let event = envelope.event_name();
        Box::pin(async move {
            let started = Instant::now();
            let report = next.run(envelope).await;
            record(event, &report, started);
            report
        })
    }
}
