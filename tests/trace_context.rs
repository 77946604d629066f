//! One trace across services: an event sent over the Redis bridge carries the sender's span as
//! the CloudEvents distributed-tracing extension (`traceparent`), and the receiver's handlers
//! run in a span whose parent is that one (feature `opentelemetry`). Against the Redis server
//! on 127.0.0.1:6379 (the CI script starts it).

#[path = "support/redis.rs"]
mod support;

use eventbus_core::bridge::{Bridge, BridgeBuilder};
use eventbus_core::redis::RedisTransport;
use eventbus_core::{Event, EventBus, Headers};
use opentelemetry::trace::{SpanId, TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use support::{unique, wait_until, SHARED_URL};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

const LIMIT: Duration = Duration::from_secs(20);

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(name = "trace.parcel.shipped", distributed)]
struct ParcelShipped {
    parcel: u64,
}

/// The spans every test of this binary exports, through one global subscriber.
fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("eventbus-tests")))
            .init();
        exporter
    })
}

/// The OpenTelemetry trace and span the current `tracing` span belongs to.
fn current_ids() -> (TraceId, SpanId) {
    let context = tracing::Span::current().context();
    let span = context.span();
    let ids = span.span_context();
    (ids.trace_id(), ids.span_id())
}

type Seen = Arc<Mutex<Vec<(TraceId, SpanId)>>>;

/// A sending and a receiving service on one route; the receiver's handler notes the ids of
/// the span it runs in.
async fn services(
    route: impl Fn(BridgeBuilder<RedisTransport>) -> BridgeBuilder<RedisTransport>,
) -> (EventBus, Bridge, Bridge, Seen) {
    let start = |route: BridgeBuilder<RedisTransport>| async move {
        let bridge = route.block(Duration::from_millis(100)).build().unwrap();
        let bus = support::bus_for(&bridge);
        bridge.start(&bus).await.unwrap();
        (bus, bridge)
    };
    let (sender, sender_bridge) = start(route(Bridge::builder(
        RedisTransport::new(SHARED_URL),
        "checkout",
    )))
    .await;
    let (receiver, receiver_bridge) = start(route(Bridge::builder(
        RedisTransport::new(SHARED_URL),
        "shipping",
    )))
    .await;
    let seen: Seen = Arc::default();
    let s = seen.clone();
    receiver
        .subscribe(move |_: &ParcelShipped| s.lock().unwrap().push(current_ids()))
        .forever();
    (sender, sender_bridge, receiver_bridge, seen)
}

async fn one_trace_spans_both_services(
    route: impl Fn(BridgeBuilder<RedisTransport>) -> BridgeBuilder<RedisTransport>,
) {
    let exporter = exporter();
    let (sender, sender_bridge, receiver_bridge, seen) = services(route).await;

    let checkout = tracing::info_span!("checkout");
    let (trace, parent) = async {
        let report = sender.publish(ParcelShipped { parcel: 7 }).await;
        assert!(report.is_ok(), "{report:?}");
        current_ids()
    }
    .instrument(checkout)
    .await;
    assert_ne!(
        trace,
        TraceId::INVALID,
        "the sender's span is an OpenTelemetry span"
    );

    wait_until("the receiver handled the event", LIMIT, || async {
        !seen.lock().unwrap().is_empty()
    })
    .await;
    let (handled_in, handler_span) = seen.lock().unwrap()[0];
    assert_eq!(
        handled_in, trace,
        "the receiver's handler runs in the sender's trace"
    );

    // handler span -> `eventbus.receive` -> the sender's `checkout` span.
    let finished = |id: SpanId| {
        exporter
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .find(|span| span.span_context.span_id() == id)
    };
    wait_until("the handler's span is exported", LIMIT, || async {
        finished(handler_span).is_some()
    })
    .await;
    let handler = finished(handler_span).unwrap();
    assert_eq!(handler.name, "handler");
    let receive = finished(handler.parent_span_id).expect("the receive span is exported");
    assert_eq!(receive.name, "eventbus.receive");
    assert_eq!(receive.parent_span_id, parent);
    assert_eq!(receive.span_context.trace_id(), trace);

    assert!(sender_bridge.shutdown().await.is_complete());
    assert!(receiver_bridge.shutdown().await.is_complete());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_event_continues_the_senders_trace() {
    let stream = unique("trace-durable");
    one_trace_spans_both_services(|b| b.durable::<ParcelShipped>(&stream)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_event_continues_the_senders_trace() {
    let channel = unique("trace-broadcast");
    one_trace_spans_both_services(|b| b.broadcast::<ParcelShipped>(&channel)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traceparent_set_by_the_publisher_is_sent_as_it_is() {
    exporter();
    let stream = unique("trace-explicit");
    let (sender, sender_bridge, receiver_bridge, seen) =
        services(|b| b.durable::<ParcelShipped>(&stream)).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    // Published inside a span of another trace: the explicit header wins.
    let report = sender
        .publish_with(
            ParcelShipped { parcel: 8 },
            Headers::from_iter([("traceparent", traceparent)]),
        )
        .instrument(tracing::info_span!("unrelated"))
        .await;
    assert!(report.is_ok(), "{report:?}");
    wait_until("the receiver handled the event", LIMIT, || async {
        !seen.lock().unwrap().is_empty()
    })
    .await;
    let (trace, _) = seen.lock().unwrap()[0];
    assert_eq!(
        trace,
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
    );
    assert!(sender_bridge.shutdown().await.is_complete());
    assert!(receiver_bridge.shutdown().await.is_complete());
}
