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
//! [`Diagnostics`], logged, and on the durable path moved to the dead-letter stream.
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
//! bridge.shutdown().await;            // stop reading, finish and ack, flush sends
//! # Ok(()) }
//! ```

mod broadcast;
mod diagnostics;
mod durable;
mod outbound;

pub use diagnostics::{Diagnostics, DiagnosticsSnapshot};
pub use outbound::Outbound;

use crate::{Event, EventBus, EventId, EventType};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, IntoConnectionInfo, ProtocolVersion};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::task::TaskTracker;

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
        }
    }
}

/// Builds a [`RedisBridge`]; see [`RedisBridge::builder`].
#[derive(Debug)]
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
        let (outbox, outbox_rx) = mpsc::channel(self.settings.outbox_capacity);
        let (stop, _) = watch::channel(false);
        Ok(RedisBridge {
            inner: Arc::new(Inner {
                service: self.service.into(),
                instance: EventId::new().to_string(),
                client,
                routes: self.routes,
                settings: self.settings,
                diagnostics: Arc::default(),
                outbox,
                outbox_rx: Mutex::new(Some(outbox_rx)),
                stop,
                tasks: TaskTracker::new(),
                publisher: TaskTracker::new(),
            }),
        })
    }
}

/// A bridge between a local [`EventBus`] and Redis; see the [module docs](self).
#[derive(Clone)]
pub struct RedisBridge {
    inner: Arc<Inner>,
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
    /// `true` once shutdown began.
    pub(crate) stop: watch::Sender<bool>,
    /// The consumers.
    tasks: TaskTracker,
    publisher: TaskTracker,
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

    /// The middleware that sends routed events to Redis; add it to the bus builder.
    pub fn outbound(&self) -> Outbound {
        Outbound::new(self.inner.clone())
    }

    /// Connects, creates the consumer groups, subscribes, and starts receiving into `bus` and
    /// sending what [`outbound`](Self::outbound) queues. Call it once.
    pub async fn start(&self, bus: &EventBus) -> Result<(), BridgeError> {
        let outbox = self
            .inner
            .outbox_rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| BridgeError::Config("the bridge was already started".into()))?;
        let sender = self.inner.manager(None).await?;
        self.inner
            .publisher
            .spawn(outbound::publish_loop(self.inner.clone(), sender, outbox));

        let channels = self.inner.channels();
        if !channels.is_empty() {
            let subscriber = broadcast::Subscriber::connect(self.inner.clone(), &channels).await?;
            self.inner.tasks.spawn(subscriber.run(bus.clone()));
        }
        for stream in self.inner.streams() {
            let consumer = durable::Consumer::connect(self.inner.clone(), stream).await?;
            self.inner.tasks.spawn(consumer.run(bus.clone()));
        }
        Ok(())
    }

    /// Stops reading, lets in-flight entries finish (and be acknowledged), then flushes the
    /// events still queued for sending.
    pub async fn shutdown(&self) {
        self.inner.stop.send_replace(true);
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        self.inner.publisher.close();
        self.inner.publisher.wait().await;
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

    pub(crate) fn stopping(&self) -> bool {
        *self.stop.borrow()
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
