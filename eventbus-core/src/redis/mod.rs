//! The Redis bridge: shares events between processes through a real Redis server.
//!
//! Two delivery modes, chosen per event type. Each is hierarchy aware: routing `OrderEvent`
//! routes every event derived from it.
//!
//! - **Broadcast** ([`RedisBridgeBuilder::broadcast`], Pub/Sub, at-most-once): every bridge
//!   instance subscribed to the channel gets every event. A bridge skips the events its own
//!   process sent. Local handlers run at once; sending never waits for remote handlers. After a
//!   dropped connection the bridge reconnects and resubscribes by itself. Events published
//!   during the gap are lost: that is what Pub/Sub promises.
//! - **Durable** ([`RedisBridgeBuilder::durable`], Streams, at-least-once): one consumer group
//!   per service. Instances of one service share the work (competing consumers); different
//!   services each get every event. An entry is acknowledged only after the local handlers
//!   succeeded; a failed one is retried; entries left pending by a crashed instance are claimed
//!   by a live one after [`claim_idle`](RedisBridgeBuilder::claim_idle); past
//!   [`max_deliveries`](RedisBridgeBuilder::max_deliveries) an entry moves to the dead-letter
//!   stream `<stream>:dead` with its reason. Streams are trimmed (`MAXLEN ~`). Duplicates are
//!   possible by design; a bounded window de-duplicates by `source` + `id`. A service skips
//!   entries it sent itself, since its own bus already handled them.
//!
//! Events travel as CloudEvents (see [`wire`](crate::wire)); only `#[event(distributed)]`
//! types can be routed. Bad input (malformed JSON, an unknown type or version, data that does
//! not fit) never stops a consumer and is never silently lost: it is counted in
//! [`diagnostics`](RedisBridge::diagnostics), logged, and on the durable path moved to the dead-letter stream.
//!
//! ```no_run
//! use eventbus_core::redis::RedisBridge;
//! use eventbus_core::{Event, EventBus};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Event, Clone, Serialize, Deserialize)]
//! #[event(name = "orders.placed", distributed)]
//! struct OrderPlaced { id: u64 }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let bridge = RedisBridge::builder("redis://127.0.0.1:6379/", "orders")
//!     .broadcast::<OrderPlaced>("shop:events")
//!     .build()?;
//! let bus = EventBus::builder().middleware(bridge.outbound()).build()?;
//! bridge.start(&bus).await?;          // subscribes; remote events now reach local handlers
//! let _ = bus.publish(OrderPlaced { id: 1 }).await; // local handlers, and Redis
//! let report = bridge.shutdown().await; // stop reading, finish and ack, flush sends
//! for unsent in report.unsent() {       // what Redis did not take before the deadline
//!     eprintln!("not sent to {}: {}", unsent.target(), unsent.payload());
//! }
//! # Ok(()) }
//! ```

mod broadcast;
mod diagnostics;
mod durable;
mod outbound;

pub(crate) use diagnostics::Diagnostics;
pub use diagnostics::DiagnosticsSnapshot;
pub use outbound::{Outbound, UnsentEvent};

use crate::topology::{Contribution, Direction, RouteNode};
use crate::{Event, EventBus, EventId, EventType};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, IntoConnectionInfo, ProtocolVersion};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How an event type travels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Broadcast { channel: String },
    Durable { stream: String },
}

/// One routing rule: events that are a `scope` go out this way.
#[derive(Clone, Debug)]
pub(crate) struct Route {
    pub(crate) scope: &'static EventType,
    pub(crate) mode: Mode,
}

/// Makes the older version of an event from the newer one.
type Downcast =
    Arc<dyn Fn(&crate::event::EventPart) -> Box<dyn crate::event::ErasedEvent> + Send + Sync>;

/// An older version sent in place of a newer one (see [`RedisBridgeBuilder::send_as`]).
#[derive(Clone)]
pub(crate) struct SendAs {
    pub(crate) to: &'static EventType,
    pub(crate) convert: Downcast,
}

impl fmt::Debug for SendAs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SendAs({})", self.to)
    }
}

/// Tunables of the durable path.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) max_deliveries: u32,
    pub(crate) claim_idle: Duration,
    pub(crate) block: Duration,
    pub(crate) batch: usize,
    pub(crate) stream_maxlen: usize,
    pub(crate) dedup_window: usize,
    pub(crate) outbox_capacity: usize,
    pub(crate) group_start: GroupStart,
    pub(crate) unhandled: Unhandled,
    pub(crate) shutdown_timeout: Duration,
    /// By the newer type's id: the older version it is sent as.
    pub(crate) send_as: rustc_hash::FxHashMap<std::any::TypeId, SendAs>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_deliveries: 5,
            claim_idle: Duration::from_secs(30),
            block: Duration::from_secs(1),
            batch: 256,
            stream_maxlen: 100_000,
            dedup_window: 10_000,
            outbox_capacity: 65_536,
            group_start: GroupStart::Now,
            unhandled: Unhandled::Retry,
            shutdown_timeout: Duration::from_secs(10),
            send_as: rustc_hash::FxHashMap::default(),
        }
    }
}

/// Where a consumer group that does not exist yet starts reading its stream; see
/// [`RedisBridgeBuilder::group_start`]. An existing group keeps its position.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupStart {
    /// Only entries added after the group is created (`$`), the default: a new service does
    /// not replay the history of a stream it has just joined.
    #[default]
    Now,
    /// Every entry the stream still holds (`0`): a new service catches up on the history.
    Beginning,
    /// Entries after this stream id (e.g. `1700000000000-0`).
    After(String),
}

impl GroupStart {
    pub(crate) fn id(&self) -> &str {
        match self {
            GroupStart::Now => "$",
            GroupStart::Beginning => "0",
            GroupStart::After(id) => id,
        }
    }
}

/// What happens to a durable entry that decodes fine but that no local handler takes (for
/// example one that arrives before its handler is subscribed); see
/// [`RedisBridgeBuilder::on_unhandled`]. It is never acknowledged in silence: every such
/// entry is counted in [`DiagnosticsSnapshot::unhandled`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unhandled {
    /// Left pending, so it is delivered again after
    /// [`claim_idle`](RedisBridgeBuilder::claim_idle), to this instance or another, and a
    /// handler subscribed meanwhile gets it; after
    /// [`max_deliveries`](RedisBridgeBuilder::max_deliveries) it moves to the dead-letter
    /// stream. The default.
    #[default]
    Retry,
    /// Moved to the dead-letter stream at once, with the reason "no handler".
    DeadLetter,
    /// Acknowledged: the service means to ignore what it has no handler for. Still counted.
    Acknowledge,
}

/// Builds a [`RedisBridge`]; see [`RedisBridge::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `.build()`"]
pub struct RedisBridgeBuilder {
    url: String,
    service: String,
    routes: Vec<Route>,
    settings: Settings,
}

impl RedisBridgeBuilder {
    /// Sends events that are an `E` (its type or derived) to every instance of every service
    /// subscribed to `channel` (Pub/Sub, at-most-once); and receives from `channel`.
    pub fn broadcast<E: Event>(mut self, channel: impl Into<String>) -> Self {
        self.routes.push(Route {
            scope: E::TYPE,
            mode: Mode::Broadcast {
                channel: channel.into(),
            },
        });
        self
    }

    /// Appends events that are an `E` to the stream `stream`, consumed by one group per service
    /// (Streams, at-least-once); and consumes `stream` in this service's group.
    pub fn durable<E: Event>(mut self, stream: impl Into<String>) -> Self {
        self.routes.push(Route {
            scope: E::TYPE,
            mode: Mode::Durable {
                stream: stream.into(),
            },
        });
        self
    }

    /// Deliveries of a durable entry before it moves to the dead-letter stream. Default 5.
    pub fn max_deliveries(mut self, max_deliveries: u32) -> Self {
        self.settings.max_deliveries = max_deliveries.max(1);
        self
    }

    /// How long a durable entry stays pending (unacknowledged) before it is delivered again,
    /// to this or another instance: the retry delay after a failure and the time to recover
    /// a crashed instance's work. Default 30 s.
    pub fn claim_idle(mut self, idle: Duration) -> Self {
        self.settings.claim_idle = idle;
        self
    }

    /// How long one blocking read waits for new entries; shutdown takes at most about this
    /// long to stop reading. Default 1 s.
    pub fn block(mut self, block: Duration) -> Self {
        self.settings.block = block.max(Duration::from_millis(1));
        self
    }

    /// Approximate stream length kept (`XADD MAXLEN ~`). Default 100 000.
    pub fn stream_maxlen(mut self, maxlen: usize) -> Self {
        self.settings.stream_maxlen = maxlen;
        self
    }

    /// How many recent (`source`, `id`) pairs the durable consumer remembers to drop
    /// duplicates. Default 10 000; 0 turns de-duplication off.
    pub fn dedup_window(mut self, window: usize) -> Self {
        self.settings.dedup_window = window;
        self
    }

    /// Where this service's consumer group starts reading a stream when the group does not
    /// exist yet. Default [`GroupStart::Now`]: only entries added from then on.
    pub fn group_start(mut self, start: GroupStart) -> Self {
        self.settings.group_start = start;
        self
    }

    /// What happens to a durable entry that no local handler takes. Default
    /// [`Unhandled::Retry`].
    pub fn on_unhandled(mut self, policy: Unhandled) -> Self {
        self.settings.unhandled = policy;
        self
    }

    /// How long [`RedisBridge::shutdown`] may take, whatever the server does: reading stops,
    /// in-flight entries finish, and queued events are written until then; what is left is
    /// handed back in the [`BridgeShutdownReport`]. Default 10 s.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.settings.shutdown_timeout = timeout;
        self
    }

    /// Sends every `New` published here as the older version `Old` of the same event, made by
    /// `downcast`: for the weeks of a migration in which this producer already has `New` but
    /// some consumers know only `Old`. Local handlers still receive `New`. What `Old` cannot
    /// hold is not sent; consumers that know `New` get it back through their upcaster.
    /// [`build`](Self::build) refuses an `Old` that is not an older version of `New`'s name,
    /// or not `#[event(distributed)]`. Remove it once every consumer knows `New`.
    pub fn send_as<New: Event, Old: Event>(
        mut self,
        downcast: impl Fn(&New) -> Old + Send + Sync + 'static,
    ) -> Self {
        let convert = Arc::new(move |part: &crate::event::EventPart| {
            let old: Box<dyn crate::event::ErasedEvent> =
                Box::new(downcast(crate::event::event_part::<New>(part)));
            old
        });
        self.settings.send_as.insert(
            std::any::TypeId::of::<New>(),
            SendAs {
                to: Old::TYPE,
                convert,
            },
        );
        self
    }

    /// Checks the configuration; connects nothing yet.
    pub fn build(self) -> Result<RedisBridge, BridgeError> {
        let info = self
            .url
            .as_str()
            .into_connection_info()
            .map_err(BridgeError::Redis)?;
        // Pub/Sub pushes need RESP3; everything else works the same on it.
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = Client::open(info.set_redis_settings(resp3)).map_err(BridgeError::Redis)?;
        if self.service.is_empty() {
            return Err(BridgeError::Config(
                "the service id must not be empty".into(),
            ));
        }
        if self.routes.is_empty() {
            return Err(BridgeError::Config(
                "no routes: add `.broadcast::<E>(channel)` or `.durable::<E>(stream)`".into(),
            ));
        }
        let clashes = &crate::wire::registry().clashes;
        if let Some((name, version, types)) = clashes.first() {
            return Err(BridgeError::Config(format!(
                "distributed event types {} both claim `{name}` version {version}",
                types.join(" and ")
            )));
        }
        for (&new, send_as) in &self.settings.send_as {
            let old = send_as.to;
            let new = crate::wire::registry()
                .by_type(new)
                .map(|r| r.event)
                .ok_or_else(|| {
                    BridgeError::Config(format!(
                        "`send_as` to {old} from a type that is not `#[event(distributed)]`"
                    ))
                })?;
            if old.name() != new.name() || old.version() >= new.version() {
                return Err(BridgeError::Config(format!(
                    "`send_as` sends {new} as {old}: that is not an older version of `{}`",
                    new.name()
                )));
            }
            if crate::wire::registry().by_type(old.type_id()).is_none() {
                return Err(BridgeError::Config(format!(
                    "`send_as` sends {new} as {old}, which is not `#[event(distributed)]`"
                )));
            }
        }
        let (outbox, outbox_rx) = mpsc::channel(self.settings.outbox_capacity);
        let (stop, _) = watch::channel(None);
        let inner = Arc::new(Inner {
            service: self.service.into(),
            instance: EventId::new().to_string(),
            client,
            routes: self.routes,
            settings: self.settings,
            diagnostics: Arc::default(),
            outbox,
            outbox_rx: Mutex::new(Some(outbox_rx)),
            stop,
            consumers: Mutex::default(),
            publisher: Mutex::default(),
        });
        Ok(RedisBridge {
            owner: Arc::new(Owner {
                inner: inner.clone(),
                shut_down: AtomicBool::new(false),
            }),
            inner,
        })
    }
}

/// A bridge between a local [`EventBus`] and Redis; see the [module docs](self).
///
/// Clones share one bridge. Call [`shutdown`](Self::shutdown) before dropping it: dropping the
/// last clone without it stops the bridge anyway (logged as an unclean stop), and what could
/// not be sent by the shutdown deadline is logged and counted instead of handed back.
#[derive(Clone)]
pub struct RedisBridge {
    inner: Arc<Inner>,
    /// Held only by the user's clones, never by the bridge's own tasks: its drop is the drop
    /// of the last handle.
    owner: Arc<Owner>,
}

struct Owner {
    inner: Arc<Inner>,
    shut_down: AtomicBool,
}

impl Drop for Owner {
    fn drop(&mut self) {
        if self.shut_down.load(Ordering::Acquire) || self.inner.outbox_rx_unstarted() {
            return;
        }
        tracing::warn!(
            service = %self.inner.service,
            "RedisBridge dropped without shutdown(): stopping it; events not sent by the deadline are logged and counted, not handed back"
        );
        self.inner.begin_stop();
    }
}

pub(crate) struct Inner {
    pub(crate) service: Arc<str>,
    /// This process's bridge: broadcast skips its own events by it.
    pub(crate) instance: String,
    pub(crate) client: Client,
    pub(crate) routes: Vec<Route>,
    pub(crate) settings: Settings,
    pub(crate) diagnostics: Arc<Diagnostics>,
    pub(crate) outbox: mpsc::Sender<outbound::Outgoing>,
    outbox_rx: Mutex<Option<mpsc::Receiver<outbound::Outgoing>>>,
    /// `Some(deadline)` once shutdown began: everything stops by then.
    pub(crate) stop: watch::Sender<Option<Instant>>,
    consumers: Mutex<Vec<JoinHandle<()>>>,
    /// The writer; it hands back what it could not write by the deadline.
    publisher: Mutex<Option<JoinHandle<Vec<outbound::Outgoing>>>>,
}

impl RedisBridge {
    /// A bridge for the service `service` (the CloudEvents `source`, and the consumer group of
    /// durable streams) to the Redis server at `url`, e.g. `redis://127.0.0.1:6379/`.
    pub fn builder(url: impl Into<String>, service: impl Into<String>) -> RedisBridgeBuilder {
        RedisBridgeBuilder {
            url: url.into(),
            service: service.into(),
            routes: Vec::new(),
            settings: Settings::default(),
        }
    }

    /// The middleware that sends routed events to Redis; add it to the bus builder (last).
    /// [`start`](Self::start) refuses a bus without it.
    pub fn outbound(&self) -> Outbound {
        Outbound::new(self.inner.clone())
    }

    /// Connects, creates the consumer groups, subscribes, and starts receiving into `bus` and
    /// sending what [`outbound`](Self::outbound) queues. Call it once.
    ///
    /// Fails with [`BridgeError::Config`] when `bus` was built without this bridge's
    /// [`outbound`](Self::outbound) middleware: such a bus would send nothing.
    pub async fn start(&self, bus: &EventBus) -> Result<(), BridgeError> {
        if !bus
            .engine()
            .middleware_of::<Outbound>()
            .any(|outbound| outbound.belongs_to(&self.inner))
        {
            return Err(BridgeError::Config(format!(
                "the bus has no outbound middleware of the bridge of `{}`, so nothing it publishes \
                 would reach Redis: build the bus with `.middleware(bridge.outbound())` (last)",
                self.inner.service
            )));
        }
        let outbox = self
            .inner
            .outbox_rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| BridgeError::Config("the bridge was already started".into()))?;
        let sender = self.inner.manager(None).await?;
        *self
            .inner
            .publisher
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(tokio::spawn(outbound::publish_loop(
            self.inner.clone(),
            sender,
            outbox,
        )));

        let mut consumers = Vec::new();
        let channels = self.inner.channels();
        if !channels.is_empty() {
            let subscriber = broadcast::Subscriber::connect(self.inner.clone(), &channels).await?;
            consumers.push(tokio::spawn(subscriber.run(bus.clone())));
        }
        for stream in self.inner.streams() {
            let consumer = durable::Consumer::connect(self.inner.clone(), stream).await?;
            consumers.push(tokio::spawn(consumer.run(bus.clone())));
        }
        self.inner
            .consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(consumers);
        // Every route sends what is an `E` and receives it: both ways in the topology.
        for route in &self.inner.routes {
            let (mode, target) = match &route.mode {
                Mode::Broadcast { channel } => ("broadcast", channel),
                Mode::Durable { stream } => ("durable", stream),
            };
            for direction in [Direction::Out, Direction::In] {
                let node = RouteNode::new("redis", direction, route.scope, mode, target);
                bus.engine().contribute(Contribution::Route(node));
            }
        }
        Ok(())
    }

    /// Stops reading, lets in-flight entries finish (and be acknowledged), then writes the
    /// events still queued for sending; all within
    /// [`shutdown_timeout`](RedisBridgeBuilder::shutdown_timeout), whatever the server does.
    /// The report hands back every event Redis did not take by then.
    ///
    /// A consumer still busy at the deadline is stopped; its unacknowledged entries stay
    /// pending in Redis and are delivered again, so nothing received is lost either.
    pub async fn shutdown(&self) -> BridgeShutdownReport {
        self.owner.shut_down.store(true, Ordering::Release);
        let deadline = self.inner.begin_stop();
        let consumers = std::mem::take(
            &mut *self
                .inner
                .consumers
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for consumer in consumers {
            let abort = consumer.abort_handle();
            if tokio::time::timeout_at(deadline, consumer).await.is_err() {
                abort.abort();
                tracing::warn!(service = %self.inner.service, "a consumer was still busy at the shutdown deadline: stopped; its unacknowledged entries stay pending in Redis");
            }
        }
        let publisher = self
            .inner
            .publisher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let unsent = match publisher {
            // The writer keeps the deadline itself, and returns what it could not write.
            Some(publisher) => publisher.await.unwrap_or_default(),
            None => Vec::new(),
        };
        BridgeShutdownReport {
            unsent: unsent.into_iter().map(UnsentEvent::from).collect(),
        }
    }

    /// Counters of what the bridge did and refused.
    pub fn diagnostics(&self) -> DiagnosticsSnapshot {
        self.inner.diagnostics.snapshot()
    }

    /// The service id.
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// The consumer name of this instance in durable consumer groups.
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }
}

impl Inner {
    /// A connection that reconnects by itself; `response_timeout` must exceed any `BLOCK`.
    pub(crate) async fn manager(
        &self,
        response_timeout: Option<Duration>,
    ) -> Result<ConnectionManager, BridgeError> {
        let mut config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_max_delay(Duration::from_secs(2));
        if let Some(timeout) = response_timeout {
            config = config.set_response_timeout(Some(timeout));
        }
        ConnectionManager::new_with_config(self.client.clone(), config)
            .await
            .map_err(BridgeError::Redis)
    }

    fn channels(&self) -> Vec<String> {
        self.names(|mode| match mode {
            Mode::Broadcast { channel } => Some(channel),
            Mode::Durable { .. } => None,
        })
    }

    fn streams(&self) -> Vec<String> {
        self.names(|mode| match mode {
            Mode::Durable { stream } => Some(stream),
            Mode::Broadcast { .. } => None,
        })
    }

    /// The distinct channel or stream names of the routes `pick` selects, sorted.
    fn names(&self, pick: fn(&Mode) -> Option<&String>) -> Vec<String> {
        let mut names: Vec<String> = self
            .routes
            .iter()
            .filter_map(|r| pick(&r.mode))
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The waits between tries against a server that fails: 100 ms, doubled up to 2 s.
    pub(crate) fn reconnect_backoff() -> backon::ExponentialBackoff {
        use backon::BackoffBuilder;
        backon::ExponentialBuilder::new()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(2))
            .without_max_times()
            .build()
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.borrow().is_some()
    }

    /// Signals every task to stop by the shutdown deadline (kept from a first call), and
    /// returns that deadline.
    fn begin_stop(&self) -> Instant {
        let mut deadline = Instant::now() + self.settings.shutdown_timeout;
        self.stop
            .send_modify(|stop| deadline = *stop.get_or_insert(deadline));
        deadline
    }

    /// Whether `start` was never called (nothing runs, so there is nothing to stop).
    fn outbox_rx_unstarted(&self) -> bool {
        self.outbox_rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }
}

/// What [`RedisBridge::shutdown`] could not finish.
#[derive(Debug, Default)]
#[must_use = "the report hands back the events that were not sent"]
pub struct BridgeShutdownReport {
    unsent: Vec<UnsentEvent>,
}

impl BridgeShutdownReport {
    /// `true` when every queued event was written.
    pub fn is_complete(&self) -> bool {
        self.unsent.is_empty()
    }

    /// The events Redis did not take before the deadline, in the order they were queued.
    pub fn unsent(&self) -> &[UnsentEvent] {
        &self.unsent
    }

    /// The unsent events, owned: to store them, or send them again later.
    pub fn into_unsent(self) -> Vec<UnsentEvent> {
        self.unsent
    }
}

impl fmt::Debug for RedisBridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBridge")
            .field("service", &self.inner.service)
            .field("instance", &self.inner.instance)
            .field("routes", &self.inner.routes)
            .finish()
    }
}

/// Why the bridge could not be built or started.
#[derive(Debug)]
#[non_exhaustive]
pub enum BridgeError {
    /// The configuration is wrong.
    Config(String),
    /// Redis refused or could not be reached.
    Redis(redis::RedisError),
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BridgeError::Config(why) => write!(f, "bridge configuration: {why}"),
            BridgeError::Redis(error) => write!(f, "redis: {error}"),
        }
    }
}

impl std::error::Error for BridgeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BridgeError::Redis(error) => Some(error),
            BridgeError::Config(_) => None,
        }
    }
}
