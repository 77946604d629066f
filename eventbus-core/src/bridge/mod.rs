//! The bridge: shares events between processes through a broker, whichever it is.
//!
//! A [`Bridge`] is written once above the [`Transport`] interface; [`redis`](crate::redis)
//! and [`rabbitmq`](crate::rabbitmq) implement it (features `redis` and `rabbitmq`). Two
//! delivery modes, chosen per event type, each hierarchy aware (routing `OrderEvent` routes
//! every event derived from it):
//!
//! - **Broadcast** ([`BridgeBuilder::broadcast`], at-most-once): every bridge instance
//!   subscribed to the topic gets every event. A bridge skips the events its own process sent.
//!   Local handlers run at once; sending never waits for remote handlers. Events sent while a
//!   connection is down are lost: that is what broadcast promises.
//! - **Durable** ([`BridgeBuilder::durable`], at-least-once): one share of the work per
//!   service. Instances of one service compete for events; different services each get every
//!   event. A message is acknowledged only after the local handlers succeeded; a failed one is
//!   delivered again; past [`max_deliveries`](BridgeBuilder::max_deliveries) it is
//!   dead-lettered with its reason. Duplicates are possible by design; a bounded window
//!   de-duplicates by `source` + `id`. A service skips events it sent itself, since its own bus
//!   already handled them.
//!
//! Events travel as CloudEvents (see [`wire`](crate::wire)); only `#[event(distributed)]`
//! types can be routed. Bad input (malformed JSON, an unknown type or version, data that does
//! not fit) never stops a consumer and is never silently lost: it is counted in
//! [`diagnostics`](Bridge::diagnostics), logged, and on the durable path dead-lettered.
//!
// The example needs a transport: compiled with the `redis` feature (as the workspace's tests
// build it), shown only without.
#![cfg_attr(feature = "redis", doc = "```no_run")]
#![cfg_attr(not(feature = "redis"), doc = "```ignore")]
//! use eventbus_core::bridge::Bridge;
//! use eventbus_core::redis::RedisTransport;
//! use eventbus_core::{Event, EventBus};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Event, Clone, Serialize, Deserialize)]
//! #[event(name = "orders.placed", distributed)]
//! struct OrderPlaced { id: u64 }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let bridge = Bridge::builder(RedisTransport::new("redis://127.0.0.1:6379/"), "orders")
//!     .broadcast::<OrderPlaced>("shop:events")
//!     .build()?;
//! let bus = EventBus::builder().middleware(bridge.outbound()).build()?;
//! bridge.start(&bus).await?;          // subscribes; remote events now reach local handlers
//! let _ = bus.publish(OrderPlaced { id: 1 }).await; // local handlers, and the broker
//! let report = bridge.shutdown().await; // stop reading, finish and ack, flush sends
//! for unsent in report.unsent() {       // what the broker did not take before the deadline
//!     eprintln!("not sent to {}: {}", unsent.target(), unsent.payload());
//! }
//! # Ok(()) }
//! ```

mod diagnostics;
mod inbound;
mod outbound;
mod transport;

pub(crate) use diagnostics::Diagnostics;
pub use diagnostics::DiagnosticsSnapshot;
pub use outbound::{Outbound, UnsentEvent};
pub use transport::{
    Delivery, Message, Mode, Outcome, Publisher, Route, Settled, Subscriber, Subscription,
    Transport, TransportError,
};

use crate::engine::Contributed;
use crate::topology::{Contribution, Direction, RouteNode};
use crate::{Event, EventBus, EventId, EventType};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Makes the older version of an event from the newer one.
type Downcast =
    Arc<dyn Fn(&crate::event::EventPart) -> Box<dyn crate::event::ErasedEvent> + Send + Sync>;

/// An older version sent in place of a newer one (see [`BridgeBuilder::send_as`]).
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

/// Tunables of the bridge, whatever the transport.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) max_deliveries: u32,
    pub(crate) dedup_window: usize,
    pub(crate) outbox_capacity: usize,
    pub(crate) unhandled: Unhandled,
    pub(crate) shutdown_timeout: Duration,
    /// By the newer type's id: the older version it is sent as.
    pub(crate) send_as: rustc_hash::FxHashMap<std::any::TypeId, SendAs>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_deliveries: 5,
            dedup_window: 10_000,
            outbox_capacity: 65_536,
            unhandled: Unhandled::Retry,
            shutdown_timeout: Duration::from_secs(10),
            send_as: rustc_hash::FxHashMap::default(),
        }
    }
}

/// What happens to a durable event that decodes fine but that no local handler takes (for
/// example one that arrives before its handler is subscribed); see
/// [`BridgeBuilder::on_unhandled`]. It is never acknowledged in silence: every such event is
/// counted in [`DiagnosticsSnapshot::unhandled`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unhandled {
    /// Delivered again later, to this instance or another, so a handler subscribed meanwhile
    /// gets it; after [`max_deliveries`](BridgeBuilder::max_deliveries) it is dead-lettered.
    /// The default.
    #[default]
    Retry,
    /// Dead-lettered at once, with the reason "no handler".
    DeadLetter,
    /// Acknowledged: the service means to ignore what it has no handler for. Still counted.
    Acknowledge,
}

/// Builds a [`Bridge`]; see [`Bridge::builder`]. Transport-specific settings are methods of
/// `BridgeBuilder<ThatTransport>` (for example [`claim_idle`](BridgeBuilder::claim_idle) on
/// Redis).
#[derive(Debug)]
#[must_use = "a builder does nothing until `.build()`"]
pub struct BridgeBuilder<T> {
    pub(crate) transport: T,
    service: String,
    routes: Vec<Route>,
    settings: Settings,
}

impl<T: Transport> BridgeBuilder<T> {
    /// Sends events that are an `E` (its type or derived) to every instance of every service
    /// subscribed to `topic` (at-most-once); and receives `topic`.
    pub fn broadcast<E: Event>(self, topic: impl Into<String>) -> Self {
        self.route::<E>(Mode::Broadcast, topic.into(), true)
    }

    /// Sends events that are an `E` to `topic`, where each subscribed service gets them once,
    /// shared among its instances (at-least-once); and consumes `topic` as this service.
    pub fn durable<E: Event>(self, topic: impl Into<String>) -> Self {
        self.route::<E>(Mode::Durable, topic.into(), true)
    }

    /// Like [`broadcast`](Self::broadcast), but only sends: this service does not receive
    /// `topic` (unless another route of it does).
    pub fn send_broadcast<E: Event>(self, topic: impl Into<String>) -> Self {
        self.route::<E>(Mode::Broadcast, topic.into(), false)
    }

    /// Like [`durable`](Self::durable), but only sends: for a producer that never handles
    /// what it sends to `topic`. It does not consume the topic (unless another route of it
    /// does), so it neither reads nor skips its own events there.
    pub fn send_durable<E: Event>(self, topic: impl Into<String>) -> Self {
        self.route::<E>(Mode::Durable, topic.into(), false)
    }

    fn route<E: Event>(mut self, mode: Mode, topic: String, receives: bool) -> Self {
        self.routes.push(Route {
            scope: E::TYPE,
            mode,
            topic: topic.into(),
            receives,
        });
        self
    }

    /// Deliveries of a durable event before it is dead-lettered. Default 5.
    pub fn max_deliveries(mut self, max_deliveries: u32) -> Self {
        self.settings.max_deliveries = max_deliveries.max(1);
        self
    }

    /// How many recent (`source`, `id`) pairs a durable consumer remembers to drop
    /// duplicates. Default 10 000; 0 turns de-duplication off.
    pub fn dedup_window(mut self, window: usize) -> Self {
        self.settings.dedup_window = window;
        self
    }

    /// What happens to a durable event that no local handler takes. Default
    /// [`Unhandled::Retry`].
    pub fn on_unhandled(mut self, policy: Unhandled) -> Self {
        self.settings.unhandled = policy;
        self
    }

    /// How long [`Bridge::shutdown`] may take, whatever the broker does: reading stops,
    /// in-flight events finish, and queued events are written until then; what is left is
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
    pub fn build(mut self) -> Result<Bridge, BridgeError> {
        if self.service.is_empty() {
            return Err(BridgeError::Config(
                "the service id must not be empty".into(),
            ));
        }
        if self.routes.is_empty() {
            return Err(BridgeError::Config(
                "no routes: add `.broadcast::<E>(topic)` or `.durable::<E>(topic)`".into(),
            ));
        }
        let clashes = &crate::wire::registry().clashes;
        if let Some((name, version, types)) = clashes.first() {
            return Err(BridgeError::Config(format!(
                "distributed event types {} both claim `{name}` version {version}",
                types.join(" and ")
            )));
        }
        for route in &self.routes {
            if let Some(other) = self
                .routes
                .iter()
                .find(|r| r.topic == route.topic && r.mode != route.mode)
            {
                return Err(BridgeError::Config(format!(
                    "topic `{}` is both {} (for {}) and {} (for {}): give each mode its own topic",
                    route.topic, route.mode, route.scope, other.mode, other.scope
                )));
            }
        }
        self.check_send_as()?;
        self.transport
            .check(&self.routes)
            .map_err(BridgeError::Transport)?;
        let (outbox, outbox_rx) = mpsc::channel(self.settings.outbox_capacity);
        let (stop, _) = watch::channel(None);
        let transport: Arc<dyn Transport> = Arc::new(self.transport);
        let inner = Arc::new(Inner {
            outbound_name: format!("{}-outbound", transport.name()).into(),
            transport,
            service: self.service.into(),
            instance: EventId::new().to_string().into(),
            routes: self.routes,
            settings: self.settings,
            diagnostics: Arc::default(),
            outbox,
            outbox_rx: Mutex::new(Some(outbox_rx)),
            stop,
            consumers: Mutex::default(),
            publisher: Mutex::default(),
            in_topology: Mutex::default(),
        });
        Ok(Bridge {
            owner: Arc::new(Owner {
                inner: inner.clone(),
                shut_down: AtomicBool::new(false),
            }),
            inner,
        })
    }

    fn check_send_as(&self) -> Result<(), BridgeError> {
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
        Ok(())
    }
}

/// A bridge between a local [`EventBus`] and a broker; see the [module docs](self).
///
/// Clones share one bridge. Call [`shutdown`](Self::shutdown) before dropping it: dropping the
/// last clone without it stops the bridge anyway (logged as an unclean stop), and what could
/// not be sent by the shutdown deadline is logged and counted instead of handed back.
#[derive(Clone)]
pub struct Bridge {
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
        if self.shut_down.load(Ordering::Acquire) || self.inner.unstarted() {
            return;
        }
        tracing::warn!(
            service = %self.inner.service,
            "Bridge dropped without shutdown(): stopping it; events not sent by the deadline are logged and counted, not handed back"
        );
        self.inner.begin_stop();
    }
}

pub(crate) struct Inner {
    pub(crate) transport: Arc<dyn Transport>,
    /// `redis-outbound`: the outbound middleware's name.
    pub(crate) outbound_name: Arc<str>,
    pub(crate) service: Arc<str>,
    /// This process's bridge: broadcast skips its own events by it.
    pub(crate) instance: Arc<str>,
    pub(crate) routes: Vec<Route>,
    pub(crate) settings: Settings,
    pub(crate) diagnostics: Arc<Diagnostics>,
    pub(crate) outbox: mpsc::Sender<Message>,
    outbox_rx: Mutex<Option<mpsc::Receiver<Message>>>,
    /// `Some(deadline)` once shutdown began: everything stops by then.
    pub(crate) stop: watch::Sender<Option<Instant>>,
    consumers: Mutex<Vec<JoinHandle<()>>>,
    /// The writer; it hands back what it could not write by the deadline.
    publisher: Mutex<Option<JoinHandle<Vec<Message>>>>,
    /// The routes in the bus's topology, from `start` until shutdown begins.
    in_topology: Mutex<Option<Contributed>>,
}

impl Bridge {
    /// A bridge for the service `service` (the CloudEvents `source`, and the consumer group of
    /// durable topics) over `transport`.
    pub fn builder<T: Transport>(transport: T, service: impl Into<String>) -> BridgeBuilder<T> {
        BridgeBuilder {
            transport,
            service: service.into(),
            routes: Vec::new(),
            settings: Settings::default(),
        }
    }

    /// The middleware that sends routed events to the broker; add it to the bus builder
    /// (last). [`start`](Self::start) refuses a bus without it.
    pub fn outbound(&self) -> Outbound {
        Outbound::new(self.inner.clone())
    }

    /// Connects, subscribes, and starts receiving into `bus` and sending what
    /// [`outbound`](Self::outbound) queues. Call it once.
    ///
    /// Fails with [`BridgeError::Config`] when `bus` was built without this bridge's
    /// [`outbound`](Self::outbound) middleware: such a bus would send nothing.
    pub async fn start(&self, bus: &EventBus) -> Result<(), BridgeError> {
        let inner = &self.inner;
        if !bus
            .engine()
            .middleware_of::<Outbound>()
            .any(|outbound| outbound.belongs_to(inner))
        {
            return Err(BridgeError::Config(format!(
                "the bus has no outbound middleware of the bridge of `{}`, so nothing it publishes \
                 would reach the broker: build the bus with `.middleware(bridge.outbound())` (last)",
                inner.service
            )));
        }
        let outbox = inner
            .outbox_rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| BridgeError::Config("the bridge was already started".into()))?;
        let publisher = inner
            .transport
            .publisher()
            .await
            .map_err(BridgeError::Transport)?;
        *inner
            .publisher
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(tokio::spawn(outbound::publish_loop(
            inner.clone(),
            publisher,
            outbox,
        )));

        let mut consumers = Vec::new();
        for subscription in inner.subscriptions() {
            let mode = subscription.mode;
            let subscriber = inner
                .transport
                .subscribe(subscription)
                .await
                .map_err(BridgeError::Transport)?;
            consumers.push(tokio::spawn(inbound::consume(
                inner.clone(),
                subscriber,
                mode,
                bus.clone(),
            )));
        }
        inner
            .consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(consumers);
        // Every route sends what is an `E`, and most receive it too; shown until shutdown.
        let nodes = inner.routes.iter().flat_map(|route| {
            let directions: &[Direction] = match route.receives {
                true => &[Direction::Out, Direction::In],
                false => &[Direction::Out],
            };
            directions.iter().map(|&direction| {
                Contribution::Route(RouteNode::new(
                    inner.transport.name(),
                    direction,
                    route.scope,
                    route.mode.as_str(),
                    &route.topic,
                ))
            })
        });
        *inner
            .in_topology
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(bus.engine().contribute(nodes));
        Ok(())
    }

    /// Stops reading, lets in-flight events finish (and be acknowledged), then writes the
    /// events still queued for sending; all within
    /// [`shutdown_timeout`](BridgeBuilder::shutdown_timeout), whatever the broker does.
    /// The report hands back every event the broker did not take by then.
    ///
    /// A consumer still busy at the deadline is stopped; its unacknowledged events stay with
    /// the broker and are delivered again, so nothing received is lost either.
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
                tracing::warn!(service = %self.inner.service, "a consumer was still busy at the shutdown deadline: stopped; its unacknowledged events stay with the broker");
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

    /// The consumer name of this instance.
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// The transport's name: `redis`, `rabbitmq`.
    pub fn transport(&self) -> &'static str {
        self.inner.transport.name()
    }
}

impl Inner {
    /// One subscription per distinct topic received, with every scope routed to it.
    fn subscriptions(&self) -> Vec<Subscription> {
        let mut subscriptions: Vec<Subscription> = Vec::new();
        for route in self.routes.iter().filter(|route| route.receives) {
            match subscriptions.iter_mut().find(|s| s.topic == route.topic) {
                Some(subscription) => subscription.scopes.push(route.scope),
                None => subscriptions.push(Subscription {
                    mode: route.mode,
                    topic: route.topic.clone(),
                    scopes: vec![route.scope],
                    service: self.service.clone(),
                    instance: self.instance.clone(),
                }),
            }
        }
        subscriptions.sort_by(|a, b| (a.mode, &a.topic).cmp(&(b.mode, &b.topic)));
        subscriptions
    }

    /// The waits between tries against a broker that fails: 100 ms, doubled up to 2 s.
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
        self.in_topology
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let mut deadline = Instant::now() + self.settings.shutdown_timeout;
        self.stop
            .send_modify(|stop| deadline = *stop.get_or_insert(deadline));
        deadline
    }

    /// Whether `start` was never called (nothing runs, so there is nothing to stop).
    fn unstarted(&self) -> bool {
        self.outbox_rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }
}

/// What [`Bridge::shutdown`] could not finish.
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

    /// The events the broker did not take before the deadline, in the order they were queued.
    pub fn unsent(&self) -> &[UnsentEvent] {
        &self.unsent
    }

    /// The unsent events, owned: to store them, or send them again later.
    pub fn into_unsent(self) -> Vec<UnsentEvent> {
        self.unsent
    }
}

impl fmt::Debug for Bridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bridge")
            .field("transport", &self.inner.transport.name())
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
    /// The broker refused or could not be reached.
    Transport(TransportError),
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BridgeError::Config(why) => write!(f, "bridge configuration: {why}"),
            BridgeError::Transport(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for BridgeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BridgeError::Transport(error) => Some(error),
            BridgeError::Config(_) => None,
        }
    }
}
