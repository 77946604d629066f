//! W3C trace context across services: the CloudEvents distributed-tracing extension
//! (`traceparent`, `tracestate`).
//!
//! With the `opentelemetry` feature, an event leaving without a `traceparent` header carries
//! the OpenTelemetry span current where it was published (read through the
//! `tracing-opentelemetry` layer), and a received event's handlers run in an
//! `eventbus.receive` span whose parent is the sender's: one trace spans both services. A
//! `traceparent` header set by the publisher is sent as it is. Without the feature the headers
//! still travel, and received events still get their `eventbus.receive` span, without a remote
//! parent.
// Only the bridges (behind features) receive.
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

use crate::event::EventMeta;

/// The name of the extension that carries the parent span.
pub(crate) const TRACEPARENT: &str = "traceparent";

/// The trace-context extensions for an event leaving the process, taken from the current span
/// when its headers have none; empty when there is no sampled-or-not valid span to continue.
pub(crate) fn outgoing(meta: &EventMeta) -> Vec<(&'static str, String)> {
    if meta.header(TRACEPARENT).is_some() {
        return Vec::new();
    }
    otel::current()
}

/// The span a received event's handlers run in: a child of the sender's span when the event
/// carries one (and an OpenTelemetry layer is installed), else a root of its own.
pub(crate) fn receive_span(meta: &EventMeta) -> tracing::Span {
    let span = tracing::info_span!(
        "eventbus.receive",
        event = meta.event_type.name(),
        source = meta.origin().unwrap_or_default(),
    );
    otel::adopt_parent(&span, meta);
    span
}

#[cfg(feature = "opentelemetry")]
mod otel {
    use super::TRACEPARENT;
    use crate::event::EventMeta;
    use opentelemetry::propagation::{Extractor, TextMapPropagator};
    use opentelemetry::trace::TraceContextExt;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use std::collections::HashMap;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    const TRACESTATE: &str = "tracestate";

    pub(super) fn current() -> Vec<(&'static str, String)> {
        let context = tracing::Span::current().context();
        if !context.span().span_context().is_valid() {
            return Vec::new();
        }
        let mut carrier = HashMap::new();
        TraceContextPropagator::new().inject_context(&context, &mut carrier);
        [TRACEPARENT, TRACESTATE]
            .into_iter()
            .filter_map(|name| {
                let value = carrier.remove(name)?;
                (!value.is_empty()).then_some((name, value))
            })
            .collect()
    }

    pub(super) fn adopt_parent(span: &tracing::Span, meta: &EventMeta) {
        if meta.header(TRACEPARENT).is_none() {
            return;
        }
        let parent = TraceContextPropagator::new().extract(&FromMeta(meta));
        if parent.span().span_context().is_valid() {
            // Fails only without an OpenTelemetry layer, where there is no trace to join.
            let _ = span.set_parent(parent);
        } else {
            tracing::debug!(
                traceparent = meta.header(TRACEPARENT),
                "received traceparent is not valid W3C trace context; not continued"
            );
        }
    }

    struct FromMeta<'a>(&'a EventMeta);

    impl Extractor for FromMeta<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.header(key)
        }

        fn keys(&self) -> Vec<&str> {
            vec![TRACEPARENT, TRACESTATE]
        }
    }
}

#[cfg(not(feature = "opentelemetry"))]
mod otel {
    use crate::event::EventMeta;

    pub(super) fn current() -> Vec<(&'static str, String)> {
        Vec::new()
    }

    pub(super) fn adopt_parent(_: &tracing::Span, _: &EventMeta) {}
}
