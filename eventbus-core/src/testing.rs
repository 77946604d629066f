//! Test helpers: a [`Recorder`] that keeps everything published, and single-handler buses
//! ([`EventBusBuilder::with_handler`](crate::EventBusBuilder::with_handler)).

use crate::middleware::{BoxFuture, Envelope, EnvelopeMut, Flow, Middleware, Next, SyncMiddleware};
use crate::{AnyEvent, Event, EventId, EventType, Headers, PublishReport};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

/// Records every event published on a bus, follow-ups included, with their causal links.
///
/// Add it as the **first** middleware so it sees events before any filter. Typed access
/// (`events::<T>()`) needs the event types to be `Clone`; the metadata is recorded for all.
///
/// ```
/// use eventbus_core::{testing::Recorder, Context, Event, EventBus};
///
/// #[derive(Event, Clone, Debug, PartialEq)]
/// struct OrderPlaced { id: u32 }
/// #[derive(Event, Clone, Debug, PartialEq)]
/// struct InvoiceSent { order: u32 }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let recorder = Recorder::new();
/// let bus = EventBus::builder().middleware(recorder.clone()).build().unwrap();
/// let _sub = bus.subscribe(|e: &OrderPlaced, ctx: Context<'_>| {
///     let invoice = InvoiceSent { order: e.id };
///     let sent = ctx.emit(invoice).is_ok();
///     async move { assert!(sent) }
/// });
/// bus.publish(OrderPlaced { id: 7 }).await;
/// bus.shutdown().await;
///
/// assert_eq!(recorder.events::<OrderPlaced>(), [OrderPlaced { id: 7 }]);
/// let invoice = recorder.assert_published::<InvoiceSent>();
/// assert_eq!(invoice.causation_id, Some(recorder.records()[0].id));
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Recorder {
    records: Arc<Mutex<Vec<Arc<Record>>>>,
}

/// One recorded publish.
#[derive(Debug)]
#[non_exhaustive]
pub struct Record {
    /// The event's type.
    pub event_type: &'static EventType,
    /// The event's name.
    pub name: &'static str,
    /// Its id.
    pub id: EventId,
    /// Its correlation id.
    pub correlation_id: EventId,
    /// The event whose handler published it.
    pub causation_id: Option<EventId>,
    /// How deep in a chain of follow-ups.
    pub depth: u32,
    /// Its headers when it reached the recorder.
    pub headers: Headers,
    /// The event itself, when its type is `Clone`.
    pub event: Option<AnyEvent>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Record>>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every recorded publish so far, in order: a snapshot, so holding it while publishing
    /// more is fine (the recorder keeps recording; call again to see the new ones).
    pub fn records(&self) -> Vec<Arc<Record>> {
        self.lock().clone()
    }

    /// Every recorded event that is a `T` (its type or a derived one), as `T`.
    ///
    /// Panics, saying which type, if a matching event's type is not `Clone`.
    #[track_caller]
    pub fn events<T: Event + Clone>(&self) -> Vec<T> {
        self.lock()
            .iter()
            .filter(|r| r.is::<T>())
            .map(|r| match &r.event {
                Some(event) => event
                    .downcast_ref::<T>()
                    .cloned()
                    .expect("a recorded event is an instance of its own lineage"),
                None => panic!(
                    "`{}` is a `{}` but was not recorded: derive `Clone` for it",
                    r.event_type.rust_name(),
                    T::TYPE.rust_name()
                ),
            })
            .collect()
    }

    /// How many recorded events are a `T` (its type or a derived one). Works for any event
    /// type, `Clone` or not.
    pub fn count<T: Event>(&self) -> usize {
        self.lock().iter().filter(|r| r.is::<T>()).count()
    }

    /// Asserts exactly one `T` was published and returns its metadata; the panic message lists
    /// what was published instead.
    #[track_caller]
    pub fn assert_published<T: Event>(&self) -> RecordSummary {
        let records = self.lock();
        let matching: Vec<&Arc<Record>> = records.iter().filter(|r| r.is::<T>()).collect();
        match matching[..] {
            [one] => RecordSummary::of(one),
            _ => panic!(
                "expected exactly one `{}` to be published, found {}; published: [{}]",
                T::TYPE.name(),
                matching.len(),
                records
                    .iter()
                    .map(|r| r.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// Asserts no `T` was published.
    #[track_caller]
    pub fn assert_not_published<T: Event>(&self) {
        let count = self.count::<T>();
        assert!(
            count == 0,
            "expected no `{}` to be published, found {count}",
            T::TYPE.name()
        );
    }

    /// Forgets everything recorded.
    pub fn clear(&self) {
        self.lock().clear();
    }
}

impl Record {
    /// Whether the recorded event is a `T` (its type or a derived one).
    pub fn is<T: Event>(&self) -> bool {
        self.event_type.is::<T>()
    }
}

/// The metadata of one record, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordSummary {
    /// The event's name.
    pub name: &'static str,
    /// Its id.
    pub id: EventId,
    /// Its correlation id.
    pub correlation_id: EventId,
    /// The event whose handler published it.
    pub causation_id: Option<EventId>,
    /// How deep in a chain of follow-ups.
    pub depth: u32,
}

impl RecordSummary {
    fn of(record: &Record) -> Self {
        RecordSummary {
            name: record.name,
            id: record.id,
            correlation_id: record.correlation_id,
            causation_id: record.causation_id,
            depth: record.depth,
        }
    }
}

/// A recorder only looks: it runs as a sync middleware, at no cost per event beyond the record.
impl SyncMiddleware for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }

    fn before(&self, envelope: &mut EnvelopeMut<'_>) -> Flow {
        self.lock().push(Arc::new(Record {
            event_type: envelope.event_type(),
            name: envelope.event_name(),
            id: envelope.event_id(),
            correlation_id: envelope.correlation_id(),
            causation_id: envelope.causation_id(),
            depth: envelope.depth(),
            headers: envelope.headers().clone(),
            event: envelope.clone_event(),
        }));
        Flow::Continue
    }
}

impl Middleware for Recorder {
    fn name(&self) -> &str {
        SyncMiddleware::name(self)
    }

    fn handle(&self, mut envelope: Envelope, next: Next) -> BoxFuture<'static, PublishReport> {
        let _ = self.before(&mut envelope.borrow_mut());
        next.run(envelope)
    }

    fn as_sync(&self) -> Option<&dyn SyncMiddleware> {
        Some(self)
    }
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("records", &self.lock().len())
            .finish()
    }
}
