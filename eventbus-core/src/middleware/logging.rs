//! [`Logging`]: a `tracing` span per publish, with the outcome.

use super::BoxFuture;
use super::{Envelope, Middleware, Next};
use crate::PublishReport;
use std::time::Instant;
use tracing::Instrument;

/// Logs every publish through `tracing`: an `INFO` span `publish` with the event name, id,
/// depth and correlation id, and on completion an event with the outcome (`INFO` when ok,
/// `WARN` with every failure otherwise). Each handler call runs in a `DEBUG` span `handler`
/// (the bus creates those, with or without this middleware).
///
/// ```
/// use eventbus_core::{middleware::Logging, EventBus};
/// let bus = EventBus::builder().middleware(Logging::new()).build().unwrap();
/// # drop(bus);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Logging {
    _private: (),
}

impl Logging {
    /// The logging middleware.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Middleware for Logging {
    fn name(&self) -> &str {
        "logging"
    }

    fn handle(&self, envelope: Envelope, next: Next) -> BoxFuture<'static, PublishReport> {
        let span = tracing::info_span!(
            "publish",
            event = envelope.event_name(),
            id = %envelope.event_id(),
            depth = envelope.depth(),
            correlation_id = %envelope.correlation_id(),
        );
        Box::pin(
            async move {
                let started = Instant::now();
                let report = next.run(envelope).await;
                let elapsed_us = started.elapsed().as_micros() as u64;
                if report.is_ok() {
                    tracing::info!(handled = report.handled(), elapsed_us, "published");
                } else if let Some(refusal) = report.refusal() {
                    tracing::warn!(%refusal, elapsed_us, "refused");
                } else {
                    for failure in report.failures() {
                        tracing::warn!(handler = failure.handler(), error = %failure, attempts = failure.attempts(), "handler failed");
                    }
                    tracing::warn!(
                        handled = report.handled(),
                        failed = report.failures().len(),
                        elapsed_us,
                        "published with failures"
                    );
                }
                report
            }
            .instrument(span),
        )
    }
}
