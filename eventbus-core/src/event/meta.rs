//! [`EventMeta`]: everything about a published event besides its data.

use super::{next_sequence, Event, EventId, EventType, Headers};
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

/// What is known about one published event besides its data: its id, type, time, causal
/// lineage and headers.
///
/// Handlers read it through [`Context`](crate::Context) and middleware through
/// [`Envelope`](crate::middleware::Envelope), both of which dereference to it, so
/// `ctx.event_name()` and `envelope.correlation_id()` are methods of this type.
///
/// ```
/// use eventbus_core::middleware::{self, Envelope, Next};
/// use eventbus_core::{Context, Event, EventBus};
///
/// #[derive(Event)]
/// struct Paid { cents: u64 }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let bus = EventBus::builder()
///     .middleware(middleware::from_fn("tenant", |mut env: Envelope, next: Next| {
///         env.headers_mut().insert("tenant", "acme");
///         next.run(env)
///     }))
///     .build()
///     .unwrap();
/// let _sub = bus.subscribe(|e: &Paid, ctx: Context| {
///     assert_eq!(ctx.header("tenant"), Some("acme"));
///     assert_eq!((ctx.depth(), ctx.causation_id(), e.cents), (0, None, 5));
/// });
/// let report = bus.publish(Paid { cents: 5 }).await;
/// assert!(report.is_ok() && report.handled() == 1); // a failed assert above would show here
/// # }
/// ```
pub struct EventMeta {
    id: Identity,
    pub(crate) event_type: &'static EventType,
    /// Read from the clock when first needed (see [`EventMeta::time`]).
    time: OnceLock<SystemTime>,
    pub(crate) depth: u32,
    pub(crate) headers: Headers,
    /// Where the event comes from; `None` (one word, nothing allocated) for the first event of
    /// a chain published here, whose correlation id is its own id. Kept out of line, so that
    /// the metadata moved around on every publish stays small.
    ancestry: Option<Arc<Ancestry>>,
    /// Whether this event is handled inside emitted work, which `shutdown` waits for: its
    /// handlers' follow-ups are accepted while shutdown drains.
    pub(crate) awaited_by_shutdown: bool,
}

/// A follow-up's or a received event's ancestry.
struct Ancestry {
    correlation_id: EventId,
    causation_id: Option<EventId>,
    /// The service that sent it, for an event received from another process.
    origin: Option<Arc<str>>,
    /// For a follow-up: the event that caused it, whose own ancestry comes next.
    cause: Option<(&'static str, Option<Arc<Ancestry>>)>,
}

/// How an event knows its id. A local event's UUIDv7 holds its time, and reading the clock
/// costs more than the rest of a sync publish: so it is built from the time and a sequence
/// number only when first asked for (the time is then read, once, and kept).
#[derive(Clone, Copy)]
enum Identity {
    Local { sequence: u64 },
    Given(EventId),
}

/// An event's id, not built yet (see [`EventMeta::id_later`]).
#[derive(Clone, Copy)]
pub(crate) struct IdLater {
    id: Identity,
    time: SystemTime,
}

impl IdLater {
    pub(crate) fn get(self) -> EventId {
        match self.id {
            Identity::Given(id) => id,
            Identity::Local { sequence } => EventId::at(self.time, sequence),
        }
    }
}

/// A copy reads the clock first if nobody had: both copies then tell the same id and time.
impl Clone for EventMeta {
    fn clone(&self) -> Self {
        self.stamp();
        EventMeta {
            id: self.id,
            event_type: self.event_type,
            time: self.time.clone(),
            depth: self.depth,
            headers: self.headers.clone(),
            ancestry: self.ancestry.clone(),
            awaited_by_shutdown: self.awaited_by_shutdown,
        }
    }
}

impl EventMeta {
    /// A top-level publish.
    pub(crate) fn root(event_type: &'static EventType) -> Self {
        EventMeta {
            id: Identity::Local {
                sequence: next_sequence(),
            },
            event_type,
            time: OnceLock::new(),
            depth: 0,
            headers: Headers::new(),
            ancestry: None,
            awaited_by_shutdown: false,
        }
    }

    /// An event received from another process: its ids, time and headers as sent, and the
    /// service that sent it (`None`: published as this process's own).
    #[cfg_attr(not(feature = "wire"), allow(dead_code))]
    pub(crate) fn received(
        event_type: &'static EventType,
        id: EventId,
        time: SystemTime,
        (correlation_id, causation_id): (EventId, Option<EventId>),
        headers: Headers,
        origin: Option<Arc<str>>,
    ) -> Self {
        EventMeta {
            id: Identity::Given(id),
            event_type,
            time: OnceLock::from(time),
            depth: 0,
            headers,
            ancestry: Some(Arc::new(Ancestry {
                correlation_id,
                causation_id,
                origin,
                cause: None,
            })),
            awaited_by_shutdown: false,
        }
    }

    /// A follow-up published by a handler of `parent`: same correlation, caused by `parent`.
    pub(crate) fn child(parent: &EventMeta, event_type: &'static EventType) -> Self {
        EventMeta {
            id: Identity::Local {
                sequence: next_sequence(),
            },
            event_type,
            time: OnceLock::new(),
            depth: parent.depth + 1,
            headers: parent.headers.clone(),
            ancestry: Some(Arc::new(Ancestry {
                correlation_id: parent.correlation_id(),
                causation_id: Some(parent.event_id()),
                origin: None,
                cause: Some((parent.event_type.name(), parent.ancestry.clone())),
            })),
            awaited_by_shutdown: parent.awaited_by_shutdown,
        }
    }

    /// The same event with `headers` set (over any it had).
    pub(crate) fn with_headers(mut self, headers: Headers) -> Self {
        // A root event has none of its own yet: take them whole (most often, none at all).
        if self.headers.is_empty() {
            self.headers = headers;
        } else {
            self.headers.extend(headers);
        }
        self
    }

    /// Reads the clock now, if not done yet: every path that may run later than the publish
    /// call (middleware, async handlers, `emit`) stamps the event on entry.
    pub(crate) fn stamp(&self) {
        self.time();
    }
}

// What handlers (through `Context`) and middleware (through `Envelope`) read.
impl EventMeta {
    /// The id of this event: a UUIDv7 holding its [`time`](Self::time) (asking for it reads
    /// the time, if nothing had), or the id it was sent with, for an event from another
    /// process.
    pub fn event_id(&self) -> EventId {
        self.id_later().get()
    }

    /// The time, if the event is stamped already (without reading the clock).
    #[inline]
    pub(crate) fn stamped_time(&self) -> Option<SystemTime> {
        self.time.get().copied()
    }

    /// The id without building it: what to build it from, later, if it is needed.
    #[inline]
    pub(crate) fn id_later(&self) -> IdLater {
        IdLater {
            id: self.id,
            time: self.time(),
        }
    }

    /// The sequence number a local event's id will be built from.
    #[inline]
    pub(crate) fn sequence(&self) -> Option<u64> {
        match self.id {
            Identity::Local { sequence } => Some(sequence),
            Identity::Given(_) => None,
        }
    }

    /// The name of the concrete event type that was published (not of the handler's type).
    pub fn event_name(&self) -> &'static str {
        self.event_type.name()
    }

    /// The version of the concrete event type.
    pub fn event_version(&self) -> u32 {
        self.event_type.version()
    }

    /// The concrete event type.
    pub fn event_type(&self) -> &'static EventType {
        self.event_type
    }

    /// When the event was published: on entry to the bus or, for an event that only sync
    /// handlers receive, when first asked for during its publish (a clock read costs more than
    /// the rest of such a publish, so it is spared when nobody asks). For an event received
    /// from another service, the time it was sent.
    pub fn time(&self) -> SystemTime {
        *self.time.get_or_init(SystemTime::now)
    }

    /// The id shared by every event of one causal chain (the first event's id).
    pub fn correlation_id(&self) -> EventId {
        match &self.ancestry {
            Some(ancestry) => ancestry.correlation_id,
            None => self.event_id(),
        }
    }

    /// The id of the event whose handler published this one, if any.
    pub fn causation_id(&self) -> Option<EventId> {
        self.ancestry.as_ref().and_then(|a| a.causation_id)
    }

    /// `0` for an event published from outside any handler, parent's depth + 1 for follow-ups.
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// A header set by middleware (or inherited from the event that caused this one).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// All headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// For an event received from another process (through a bridge), the service that sent
    /// it (the CloudEvents `source`); `None` for local events.
    pub fn origin(&self) -> Option<&str> {
        self.ancestry.as_ref().and_then(|a| a.origin.as_deref())
    }

    /// Whether the published event is a `T` (its concrete type or an ancestor).
    pub fn is<T: Event>(&self) -> bool {
        self.event_type.is::<T>()
    }

    /// Event names from the first event of the causal chain to this one.
    pub fn chain(&self) -> Vec<&'static str> {
        let causes = std::iter::successors(self.ancestry.as_deref(), |a| {
            a.cause.as_ref().and_then(|(_, parent)| parent.as_deref())
        });
        let mut names: Vec<_> = causes
            .filter_map(|a| a.cause.as_ref().map(|(name, _)| *name))
            .collect();
        names.reverse();
        names.push(self.event_type.name());
        names
    }
}

impl fmt::Debug for EventMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventMeta")
            .field("event_name", &self.event_name())
            .field("event_id", &self.event_id())
            .field("correlation_id", &self.correlation_id())
            .field("causation_id", &self.causation_id())
            .field("depth", &self.depth)
            .field("headers", &self.headers)
            .finish()
    }
}
