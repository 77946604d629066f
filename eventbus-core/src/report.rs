//! What a publish did: [`PublishReport`], with every [`HandlerFailure`] or the [`Refusal`]; and
//! why an emit was not accepted: [`EmitError`].

use crate::event::{EventId, EventMeta, EventType};
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

/// The outcome of one [`publish`](crate::EventBus::publish).
///
/// A failing handler never stops the others: each failure is recorded here, with the handler's
/// name, and dispatch goes on.
#[derive(Clone, Debug)]
#[must_use = "a report tells whether every handler succeeded"]
pub struct PublishReport {
    event_type: &'static EventType,
    event_id: ReportId,
    handled: usize,
    /// Failures and refusals, out of line: rare, and a report without them is small to move
    /// and free to drop on the hot path.
    problems: Option<Box<Problems>>,
    /// The middleware run that produced it (see `middleware::Next`); 0 outside middleware.
    pub(crate) run: u64,
}

#[derive(Clone, Debug, Default)]
struct Problems {
    failures: Vec<HandlerFailure>,
    refusal: Option<Refusal>,
}

/// The reported event's id: known, or still to be built (nobody asked for it during the
/// publish, so it is fixed when the report is first asked; see `EventMeta::event_id`).
#[derive(Clone, Debug)]
enum ReportId {
    Known(EventId),
    Pending {
        sequence: u64,
        time: OnceLock<SystemTime>,
    },
}

impl ReportId {
    /// The UUID is built only when someone asks the report for it: a local event keeps its
    /// sequence number and, once stamped, its time.
    #[inline]
    fn of(meta: &EventMeta) -> Self {
        match meta.sequence() {
            Some(sequence) => ReportId::Pending {
                sequence,
                time: meta
                    .stamped_time()
                    .map_or_else(OnceLock::new, OnceLock::from),
            },
            None => ReportId::Known(meta.event_id()),
        }
    }
}

impl PublishReport {
    /// An empty report of the event `meta` describes.
    #[inline]
    pub(crate) fn new(meta: &EventMeta) -> Self {
        Self::with_id(meta.event_type, ReportId::of(meta))
    }

    #[inline]
    fn with_id(event_type: &'static EventType, event_id: ReportId) -> Self {
        PublishReport {
            event_type,
            event_id,
            handled: 0,
            problems: None,
            run: 0,
        }
    }

    /// A report of an event refused before any handler ran.
    pub(crate) fn refused(meta: &EventMeta, refusal: Refusal) -> Self {
        PublishReport {
            problems: Some(Box::new(Problems {
                failures: Vec::new(),
                refusal: Some(refusal),
            })),
            ..Self::new(meta)
        }
    }

    /// A report of an event known by its type and id only (its metadata is gone).
    pub(crate) fn refused_by_id(
        event_type: &'static EventType,
        event_id: EventId,
        refusal: Refusal,
    ) -> Self {
        PublishReport {
            problems: Some(Box::new(Problems {
                failures: Vec::new(),
                refusal: Some(refusal),
            })),
            ..Self::with_id(event_type, ReportId::Known(event_id))
        }
    }

    /// An empty report of an event known by its type and id only.
    pub(crate) fn for_id(event_type: &'static EventType, event_id: EventId) -> Self {
        Self::with_id(event_type, ReportId::Known(event_id))
    }

    /// Takes the event's id from `meta` if a handler fixed it while the report was made.
    #[inline]
    pub(crate) fn finish(&mut self, meta: &EventMeta) {
        if let (ReportId::Pending { time, .. }, Some(stamped)) =
            (&self.event_id, meta.stamped_time())
        {
            let _ = time.set(stamped);
        }
    }

    /// Records one handler call: `None` for success.
    pub(crate) fn record(&mut self, failure: Option<HandlerFailure>) {
        self.handled += 1;
        if let Some(failure) = failure {
            self.record_middleware_failure(failure);
        }
    }

    /// Records a middleware that failed (it is not a handler, so `handled` does not change).
    pub(crate) fn record_middleware_failure(&mut self, failure: HandlerFailure) {
        self.problems.get_or_insert_default().failures.push(failure);
    }

    /// `true` when the event was dispatched (not refused or filtered) and nothing failed.
    pub fn is_ok(&self) -> bool {
        self.failures().is_empty() && self.refusal().is_none()
    }

    /// `Some` when a middleware filtered the event out: its name and reason.
    pub fn filtered(&self) -> Option<(&str, &str)> {
        match self.refusal() {
            Some(Refusal::Filtered { middleware, reason }) => Some((middleware, reason)),
            _ => None,
        }
    }

    /// `true` when the event was dispatched (not refused or filtered) but no handler took it:
    /// a dead event.
    pub fn is_unhandled(&self) -> bool {
        self.handled == 0 && self.problems.is_none()
    }

    /// How many handlers ran (successfully or not). `0` means the event reached no handler.
    pub fn handled(&self) -> usize {
        self.handled
    }

    /// How many handlers ran and succeeded.
    pub fn succeeded(&self) -> usize {
        let failed_handlers = self.failures().iter().filter(|f| !f.middleware).count();
        self.handled - failed_handlers
    }

    /// The handlers that returned `Err` or panicked, in the order they ran.
    pub fn failures(&self) -> &[HandlerFailure] {
        self.problems.as_deref().map_or(&[], |p| &p.failures)
    }

    /// Why the event was not dispatched at all, if it was not.
    pub fn refusal(&self) -> Option<&Refusal> {
        self.problems.as_deref().and_then(|p| p.refusal.as_ref())
    }

    /// The published event's type.
    pub fn event_type(&self) -> &'static EventType {
        self.event_type
    }

    /// The published event's id.
    pub fn event_id(&self) -> EventId {
        match &self.event_id {
            ReportId::Known(id) => *id,
            ReportId::Pending { sequence, time } => {
                EventId::at(*time.get_or_init(SystemTime::now), *sequence)
            }
        }
    }

    /// `Ok(self)` when [`is_ok`](Self::is_ok), else the report as an error, for `?`.
    pub fn into_result(self) -> Result<Self, PublishError> {
        if self.is_ok() {
            Ok(self)
        } else {
            Err(PublishError(Box::new(self)))
        }
    }
}

/// One handler (or middleware) that failed.
#[derive(Clone, Debug)]
pub struct HandlerFailure {
    handler: Arc<str>,
    kind: FailureKind,
    attempts: u32,
    middleware: bool,
}

impl HandlerFailure {
    pub(crate) fn handler_failed(handler: &Arc<str>, kind: FailureKind, attempts: u32) -> Self {
        HandlerFailure {
            handler: Arc::clone(handler),
            kind,
            attempts,
            middleware: false,
        }
    }

    pub(crate) fn middleware_failed(middleware: &Arc<str>, kind: FailureKind) -> Self {
        HandlerFailure {
            handler: Arc::clone(middleware),
            kind,
            attempts: 1,
            middleware: true,
        }
    }

    /// The handler's name: the fn path of a `#[handler]`, or the subscription's name (or the
    /// middleware's name when [`is_middleware`](Self::is_middleware)).
    pub fn handler(&self) -> &str {
        &self.handler
    }

    /// How many times the handler was tried (more than 1 with a retry policy).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// `true` when a middleware failed, not a handler.
    pub fn is_middleware(&self) -> bool {
        self.middleware
    }

    /// How it failed.
    pub fn kind(&self) -> &FailureKind {
        &self.kind
    }

    /// `true` when the handler panicked rather than returning `Err`.
    pub fn is_panic(&self) -> bool {
        matches!(self.kind, FailureKind::Panic(_))
    }
}

impl fmt::Display for HandlerFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.kind, f)
    }
}

/// How a handler failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// It returned `Err`; this is the error's `Display` text.
    Error(String),
    /// It panicked; this is the panic message.
    Panic(String),
    /// It ran past its timeout and was cancelled.
    TimedOut(std::time::Duration),
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::Error(message) => f.write_str(message),
            FailureKind::Panic(message) => write!(f, "panicked: {message}"),
            FailureKind::TimedOut(limit) => write!(f, "timed out after {limit:?}"),
        }
    }
}

/// Why a publish was refused before any handler ran.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// A chain of handlers publishing follow-up events went deeper than
    /// [`max_depth`](crate::EventBusBuilder::max_depth): an event storm.
    TooDeep {
        /// The configured limit.
        max_depth: u32,
        /// Event names from the first publish to the refused one.
        chain: Vec<&'static str>,
    },
    /// [`shutdown`](crate::EventBus::shutdown) was called.
    ShutDown,
    /// A middleware filtered the event out (see
    /// [`Envelope::filter`](crate::middleware::Envelope::filter)).
    Filtered {
        /// The middleware's name.
        middleware: String,
        /// Why.
        reason: String,
    },
    /// A middleware returned a report it did not get from `next` for this event (a cached or
    /// cloned one, or one of another event): this event reached no handler through it.
    Swallowed {
        /// The middleware's name.
        middleware: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::TooDeep { max_depth, chain } => write!(
                f,
                "event storm: publish chain deeper than max_depth {max_depth}: {}",
                chain.join(" -> ")
            ),
            Refusal::ShutDown => f.write_str("the bus is shut down"),
            Refusal::Filtered { middleware, reason } => {
                write!(f, "filtered by middleware `{middleware}`: {reason}")
            }
            Refusal::Swallowed { middleware } => write!(
                f,
                "middleware `{middleware}` returned a report that was not this event's, \
                 so the event reached no handler: return what `next.run(envelope)` gives, \
                 or `envelope.filter(reason)`"
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// A [`PublishReport`] that was not ok, as an error (see [`PublishReport::into_result`]).
#[derive(Clone, Debug)]
pub struct PublishError(Box<PublishReport>);

impl PublishError {
    /// The full report.
    pub fn report(&self) -> &PublishReport {
        &self.0
    }
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let report = &self.0;
        if let Some(refusal) = report.refusal() {
            return write!(f, "{} was refused: {refusal}", report.event_type.name());
        }
        write!(
            f,
            "{} of {} handlers of {} failed",
            report.failures().len(),
            report.handled,
            report.event_type.name()
        )?;
        for failure in report.failures() {
            let what = if failure.middleware {
                "middleware "
            } else {
                ""
            };
            write!(f, "; {what}{}: {}", failure.handler, failure.kind)?;
        }
        Ok(())
    }
}

impl std::error::Error for PublishError {}

/// Why an emit did not dispatch its event; holds the event, so nothing is lost.
pub struct EmitError<E> {
    kind: EmitErrorKind,
    event: E,
}

impl<E> EmitError<E> {
    pub(crate) fn new(kind: EmitErrorKind, event: E) -> Self {
        EmitError { kind, event }
    }

    /// Why.
    pub fn kind(&self) -> &EmitErrorKind {
        &self.kind
    }

    /// The event, back to the caller.
    pub fn into_event(self) -> E {
        self.event
    }
}

/// Why an emit was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EmitErrorKind {
    /// The bus refused it: shut down, or an event storm.
    Refused(Refusal),
    /// `max_in_flight` emitted events are already in flight.
    Full {
        /// The configured cap.
        capacity: usize,
    },
    /// `emit` was called outside a tokio runtime.
    NoRuntime,
}

impl<E> fmt::Debug for EmitError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmitError")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl<E> fmt::Display for EmitError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            EmitErrorKind::Refused(refusal) => write!(f, "event not emitted: {refusal}"),
            EmitErrorKind::Full { capacity } => write!(
                f,
                "event not emitted: {capacity} emitted events are already in flight"
            ),
            EmitErrorKind::NoRuntime => {
                f.write_str("event not emitted: no tokio runtime is running")
            }
        }
    }
}

impl<E> std::error::Error for EmitError<E> {}
