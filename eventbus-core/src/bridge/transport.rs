//! The interface a broker implements to carry a [`Bridge`](super::Bridge)'s events.
//!
//! A transport moves opaque CloudEvent payloads; everything else (encoding, routing by
//! lineage, skipping one's own events, de-duplication, retries, dead-letter decisions,
//! diagnostics, tracing, shutdown) is the bridge's, written once above it.

use crate::handler::BoxFuture;
use crate::EventType;
use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// A broker a [`Bridge`](super::Bridge) can send events through and receive them from.
///
/// Implemented by [`RedisTransport`](crate::redis::RedisTransport) and
/// [`RabbitTransport`](crate::rabbitmq::RabbitTransport); docs/transports.md shows how to plug
/// in another (NATS JetStream, Kafka) and the conformance suite it has to pass.
pub trait Transport: Send + Sync + 'static {
    /// A short name for logs, the topology and middleware names: `redis`.
    fn name(&self) -> &'static str;

    /// Checks the configuration against the bridge's routes, before anything connects.
    fn check(&mut self, routes: &[Route]) -> Result<(), TransportError> {
        let _ = routes;
        Ok(())
    }

    /// Opens the sending side. The bridge calls it once, from
    /// [`Bridge::start`](super::Bridge::start).
    fn publisher(&self) -> BoxFuture<'_, Result<Box<dyn Publisher>, TransportError>>;

    /// Opens one subscription: every event sent to `subscription.topic()` in its mode, for
    /// this service (durable: one share of the service's work; broadcast: all of it).
    fn subscribe(
        &self,
        subscription: Subscription,
    ) -> BoxFuture<'_, Result<Box<dyn Subscriber>, TransportError>>;
}

/// The sending side of a [`Transport`].
pub trait Publisher: Send {
    /// Writes `batch`, in order. `Err` when the round trip as a whole failed (connection
    /// lost): the bridge drops the broadcasts of the batch and writes its durable messages
    /// again after a back-off. `Ok` holds one result per message: an `Err` is a message the
    /// broker refused (the bridge retries a durable one a few times).
    ///
    /// A durable message counts as written only once the broker has taken responsibility for
    /// it (persisted, or confirmed), never merely buffered.
    fn publish<'a>(
        &'a mut self,
        batch: &'a [Message],
    ) -> BoxFuture<'a, Result<Vec<Result<(), TransportError>>, TransportError>>;
}

/// The receiving side of one [`Subscription`].
pub trait Subscriber: Send {
    /// The next deliveries, in the order the broker gives them. Of a durable subscription it
    /// returns within about a second when nothing arrives (an empty batch), so the bridge
    /// notices shutdown; a broadcast one may wait longer (the bridge stops waiting itself).
    /// `Err` for a failed round trip: the bridge counts it, backs off and calls again, so the
    /// subscriber reconnects here (and declares again what it needs).
    fn receive(&mut self) -> BoxFuture<'_, Result<Vec<Delivery>, TransportError>>;

    /// Settles deliveries once the bridge has handled them. Of a durable subscription:
    /// [`Outcome::Ack`] removes it, [`Outcome::Retry`] delivers it again later (to this
    /// instance or another), [`Outcome::DeadLetter`] moves it, with the reason, to where the
    /// transport keeps dead letters, then removes it. A broadcast one ignores outcomes.
    ///
    /// The bridge settles each batch that [`receive`](Self::receive) returned, whole and in
    /// its order, in one call, before it receives again (so deliveries that share one broker
    /// message, such as the events of a packed Redis entry, are settled together).
    fn settle(&mut self, settled: Vec<Settled>) -> BoxFuture<'_, Result<(), TransportError>>;

    /// Finishes what [`settle`](Self::settle) buffered, before the subscriber is dropped at
    /// shutdown.
    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// How a route's events travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Mode {
    /// Every instance of every subscribed service gets every event; at-most-once.
    Broadcast,
    /// One instance of each subscribed service gets every event; at-least-once.
    Durable,
}

impl Mode {
    /// `broadcast` or `durable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Broadcast => "broadcast",
            Mode::Durable => "durable",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One routing rule of a bridge: events that are a [`scope`](Self::scope) (its type or a
/// derived one) travel to [`topic`](Self::topic) in [`mode`](Self::mode), and, unless the
/// route only sends, this service receives that topic.
#[derive(Clone, Debug)]
pub struct Route {
    pub(crate) scope: &'static EventType,
    pub(crate) mode: Mode,
    pub(crate) topic: Arc<str>,
    pub(crate) receives: bool,
}

impl Route {
    /// The event type the route carries, with every type derived from it.
    pub fn scope(&self) -> &'static EventType {
        self.scope
    }

    /// Broadcast or durable.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The channel, stream, exchange or subject.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Whether this service receives the topic through this route (`false`: it only sends).
    pub fn receives(&self) -> bool {
        self.receives
    }
}

/// An event on its way out: its CloudEvent JSON and where it goes.
#[derive(Clone, Debug)]
pub struct Message {
    pub(crate) mode: Mode,
    pub(crate) topic: Arc<str>,
    pub(crate) event_type: &'static EventType,
    pub(crate) payload: Arc<str>,
    /// Times the broker refused it.
    pub(crate) rejections: u32,
}

impl Message {
    /// Broadcast or durable.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The topic of the route it matched.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The type of the event sent (the older version when it is sent as one); its
    /// [`lineage`](EventType::lineage) is what a broker can route by.
    pub fn event_type(&self) -> &'static EventType {
        self.event_type
    }

    /// The CloudEvent, as JSON (structured content mode).
    pub fn payload(&self) -> &str {
        &self.payload
    }
}

/// What a subscription receives.
#[derive(Clone, Debug)]
pub struct Subscription {
    pub(crate) mode: Mode,
    pub(crate) topic: Arc<str>,
    pub(crate) scopes: Vec<&'static EventType>,
    pub(crate) service: Arc<str>,
    pub(crate) instance: Arc<str>,
}

impl Subscription {
    /// Broadcast or durable.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The topic to receive.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The event types routed to this topic (each with its derived types): a broker that
    /// routes by lineage binds these.
    pub fn scopes(&self) -> &[&'static EventType] {
        &self.scopes
    }

    /// The service: the consumer group (durable) that shares the work.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// This instance of the service: its consumer name.
    pub fn instance(&self) -> &str {
        &self.instance
    }
}

/// One message received.
#[derive(Debug)]
pub struct Delivery {
    id: String,
    payload: Result<Vec<u8>, String>,
    deliveries: u32,
}

impl Delivery {
    /// A message with the transport's id for it (an entry id, a delivery tag), its payload,
    /// and how many times it has been delivered, this time included (1 the first time).
    pub fn new(id: impl Into<String>, payload: Vec<u8>, deliveries: u32) -> Self {
        Delivery {
            id: id.into(),
            payload: Ok(payload),
            deliveries: deliveries.max(1),
        }
    }

    /// A message the transport could not make sense of (say, a stream entry without the
    /// CloudEvent field): the bridge counts it as malformed and dead-letters it.
    pub fn unreadable(id: impl Into<String>, why: impl Into<String>, deliveries: u32) -> Self {
        Delivery {
            id: id.into(),
            payload: Err(why.into()),
            deliveries: deliveries.max(1),
        }
    }

    /// The transport's id for it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The transport's id for it, taken (to acknowledge it without a copy).
    pub fn into_id(self) -> String {
        self.id
    }

    /// The payload, or why there is none.
    pub fn payload(&self) -> Result<&[u8], &str> {
        match &self.payload {
            Ok(payload) => Ok(payload),
            Err(why) => Err(why),
        }
    }

    /// Times delivered, this one included.
    pub fn deliveries(&self) -> u32 {
        self.deliveries
    }
}

/// What became of a delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Handled (or to be ignored): remove it.
    Ack,
    /// Failed: deliver it again later.
    Retry,
    /// Will never succeed: keep it aside with this reason.
    DeadLetter(String),
}

/// A delivery and its outcome, handed back to [`Subscriber::settle`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Settled {
    /// The delivery, as the subscriber gave it.
    pub delivery: Delivery,
    /// What to do with it.
    pub outcome: Outcome,
}

/// A broker's error, as a transport reports it.
#[derive(Debug)]
pub struct TransportError {
    transport: &'static str,
    source: Box<dyn Error + Send + Sync>,
    unroutable: bool,
}

impl TransportError {
    /// Wraps an error of the transport `transport`.
    pub fn new(transport: &'static str, source: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        TransportError {
            transport,
            source: source.into(),
            unroutable: false,
        }
    }

    /// The reply to a durable message the broker took but could store for nobody: no
    /// service has subscribed to its topic yet (RabbitMQ returns such a message). The
    /// bridge does not send it again; it counts it
    /// ([`send_unroutable`](super::DiagnosticsSnapshot::send_unroutable)) and logs it with
    /// its payload.
    pub fn unroutable(
        transport: &'static str,
        source: impl Into<Box<dyn Error + Send + Sync>>,
    ) -> Self {
        TransportError {
            unroutable: true,
            ..Self::new(transport, source)
        }
    }

    /// Whether this is the reply to a message no subscriber could receive (see
    /// [`unroutable`](Self::unroutable)).
    pub fn is_unroutable(&self) -> bool {
        self.unroutable
    }

    /// The transport's name.
    pub fn transport(&self) -> &'static str {
        self.transport
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.transport, self.source)
    }
}

impl Error for TransportError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.source)
    }
}

/// A transport chosen at run time (from configuration, say): `Bridge::builder(boxed,
/// service)` takes it like any other; only the settings of one transport's own builder
/// methods are out of reach.
impl Transport for Box<dyn Transport> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn check(&mut self, routes: &[Route]) -> Result<(), TransportError> {
        (**self).check(routes)
    }

    fn publisher(&self) -> BoxFuture<'_, Result<Box<dyn Publisher>, TransportError>> {
        (**self).publisher()
    }

    fn subscribe(
        &self,
        subscription: Subscription,
    ) -> BoxFuture<'_, Result<Box<dyn Subscriber>, TransportError>> {
        (**self).subscribe(subscription)
    }
}
