//! [`Context`]: what a handler knows about the event it is handling, and how it publishes
//! follow-up events.

use crate::event::ErasedEvent;
use crate::wire::Incoming;
use crate::{EmitError, Event, EventBus, EventId, EventType, Headers, PublishReport};
use std::any::TypeId;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

/// Metadata of one published event.
#[derive(Clone)]
pub(crate) struct Meta {
    pub(crate) id: EventId,
    pub(crate) event_type: &'static EventType,
    /// Read from the clock when first needed (see [`Meta::time`]).
    time: OnceLock<SystemTime>,
    pub(crate) correlation_id: EventId,
    pub(crate) causation_id: Option<EventId>,
    pub(crate) depth: u32,
    pub(crate) headers: Headers,
    /// The service that sent it, for an event received from another process.
    pub(crate) origin: Option<Arc<str>>,
    /// The events that caused this one, nearest last; only follow-ups allocate it.
    trail: Option<Arc<Trail>>,
}

struct Trail {
    name: &'static str,
    parent: Option<Arc<Trail>>,
}

impl Meta {
    /// A top-level publish.
    pub(crate) fn root(event_type: &'static EventType) -> Self {
        let id = EventId::new();
        Meta {
            id,
            event_type,
            time: OnceLock::new(),
            correlation_id: id,
            causation_id: None,
            depth: 0,
            headers: Headers::new(),
            origin: None,
            trail: None,
        }
    }

    /// An event received from another process: its ids, time and headers as sent.
    pub(crate) fn incoming(event_type: &'static EventType, incoming: &mut Incoming) -> Self {
        Meta {
            id: incoming.id,
            event_type,
            time: OnceLock::from(incoming.time),
            correlation_id: incoming.correlation_id,
            causation_id: incoming.causation_id,
            depth: 0,
            headers: std::mem::take(&mut incoming.headers),
            origin: Some(incoming.source.as_str().into()),
            trail: None,
        }
    }

    /// A follow-up published by a handler of `parent`: same correlation, caused by `parent`.
    pub(crate) fn child(parent: &Meta, event_type: &'static EventType) -> Self {
        Meta {
            id: EventId::new(),
            event_type,
            time: OnceLock::new(),
            correlation_id: parent.correlation_id,
            causation_id: Some(parent.id),
            depth: parent.depth + 1,
            headers: parent.headers.clone(),
            origin: None,
            trail: Some(Arc::new(Trail {
                name: parent.event_type.name(),
                parent: parent.trail.clone(),
            })),
        }
    }

    /// When the event was published. A clock read costs more than the rest of an inline
    /// publish, so it is taken lazily: every path that may run later than the publish call
    /// (middleware, async handlers, `emit`) [stamps](Self::stamp) the event on entry; a
    /// publish to sync handlers only reads the clock if someone asks, while it is running.
    pub(crate) fn time(&self) -> SystemTime {
        *self.time.get_or_init(SystemTime::now)
    }

    /// Reads the clock now, if not done yet.
    pub(crate) fn stamp(&self) {
        self.time();
    }

    /// Event names from the first publish of the causal chain to this one.
    pub(crate) fn chain(&self) -> Vec<&'static str> {
        let mut names: Vec<_> =
            std::iter::successors(self.trail.as_deref(), |t| t.parent.as_deref())
                .map(|t| t.name)
                .collect();
        names.reverse();
        names.push(self.event_type.name());
        names
    }
}

/// What a handler may know about the event it handles, and its way to publish follow-ups.
///
/// Take it as a handler parameter (`ctx: Context`). It is cheap to copy and valid for the
/// duration of the handler call.
///
/// ```
/// use eventbus_core::{handler, Context, Event};
///
/// #[derive(Event)]
/// struct DomainEvent { at_ms: u64 }
///
/// #[derive(Event)]
/// #[event(extends = DomainEvent)]
/// struct UserDeleted { #[event(base)] base: DomainEvent, user_id: u64 }
///
/// #[derive(Event)]
/// struct PurgeRequested { user_id: u64 }
///
/// #[handler]
/// async fn audit(e: &DomainEvent, ctx: Context) {
///     // The concrete event is still there: the `isinstance` of this world.
///     if let Some(deleted) = ctx.downcast_ref::<UserDeleted>() {
///         // Follow-ups share the correlation id and record this event as their cause.
///         let report = ctx.publish(PurgeRequested { user_id: deleted.user_id }).await;
///         assert_eq!(report.handled(), 0);
///     }
///     println!("{} #{} at {}", ctx.event_name(), ctx.event_id(), e.at_ms);
/// }
/// ```
#[derive(Clone, Copy)]
pub struct Context<'a> {
    bus: &'a EventBus,
    meta: &'a Meta,
    event: &'a dyn ErasedEvent,
    handler: &'a str,
}

impl<'a> Context<'a> {
    pub(crate) fn new(
        bus: &'a EventBus,
        meta: &'a Meta,
        event: &'a dyn ErasedEvent,
        handler: &'a str,
    ) -> Self {
        Context {
            bus,
            meta,
            event,
            handler,
        }
    }

    /// The id of this event.
    pub fn event_id(&self) -> EventId {
        self.meta.id
    }

    /// The name of the concrete event type that was published (not of the handler's type).
    pub fn event_name(&self) -> &'static str {
        self.meta.event_type.name()
    }

    /// The version of the concrete event type.
    pub fn event_version(&self) -> u32 {
        self.meta.event_type.version()
    }

    /// The concrete event type.
    pub fn event_type(&self) -> &'static EventType {
        self.meta.event_type
    }

    /// When the event was published: on entry to the bus, or for an event that only sync
    /// handlers receive, when first asked for during its publish (which spares the clock read
    /// when nobody asks). For an event received from another service, the time it was sent.
    pub fn time(&self) -> SystemTime {
        self.meta.time()
    }

    /// The id shared by every event of one causal chain (the first event's id).
    pub fn correlation_id(&self) -> EventId {
        self.meta.correlation_id
    }

    /// The id of the event whose handler published this one, if any.
    pub fn causation_id(&self) -> Option<EventId> {
        self.meta.causation_id
    }

    /// `0` for an event published from outside any handler, parent's depth + 1 for follow-ups.
    pub fn depth(&self) -> u32 {
        self.meta.depth
    }

    /// A header set by middleware (or inherited from the event that caused this one).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.meta.headers.get(name)
    }

    /// All headers.
    pub fn headers(&self) -> &'a Headers {
        &self.meta.headers
    }

    /// For an event received from another process (through a bridge), the service that sent
    /// it (the CloudEvents `source`); `None` for local events.
    pub fn origin(&self) -> Option<&'a str> {
        self.meta.origin.as_deref()
    }

    /// Event names from the first event of the causal chain to this one.
    pub fn chain(&self) -> Vec<&'static str> {
        self.meta.chain()
    }

    /// The name of the handler being called.
    pub fn handler_name(&self) -> &'a str {
        self.handler
    }

    /// The published event as `T`, when `T` is its concrete type or one of its ancestors.
    pub fn downcast_ref<T: Event>(&self) -> Option<&'a T> {
        let level = self.meta.event_type.level_of(TypeId::of::<T>())?;
        self.event.part(level)?.downcast_ref::<T>()
    }

    /// Whether the published event is a `T` (its concrete type or an ancestor).
    pub fn is<T: Event>(&self) -> bool {
        self.meta.event_type.level_of(TypeId::of::<T>()).is_some()
    }

    /// The bus this event is being dispatched on.
    pub fn bus(&self) -> &'a EventBus {
        self.bus
    }

    /// Publishes a follow-up event and waits for its handlers. It inherits the correlation id,
    /// is caused by this event, and is one level deeper: past
    /// [`max_depth`](crate::EventBusBuilder::max_depth) it is refused (see
    /// [`Refusal::TooDeep`](crate::Refusal::TooDeep)).
    pub async fn publish<E: Event>(&self, event: E) -> PublishReport {
        self.bus.publish_from(self.meta, event).await
    }

    /// Emits a follow-up event without waiting (see [`EventBus::emit`]); same lineage rules as
    /// [`publish`](Self::publish). Accepted while the bus is shutting down, since it is part of
    /// work already in flight.
    pub fn emit<E: Event>(&self, event: E) -> Result<(), EmitError<E>> {
        self.bus.emit_from(self.meta, event)
    }
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("event_name", &self.event_name())
            .field("event_id", &self.meta.id)
            .field("correlation_id", &self.meta.correlation_id)
            .field("causation_id", &self.meta.causation_id)
            .field("depth", &self.meta.depth)
            .field("handler", &self.handler)
            .finish()
    }
}
