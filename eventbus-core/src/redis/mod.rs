//! Redis as a bridge transport: broadcast over Pub/Sub, durable over Streams.
//!
//! - **Broadcast** topics are Pub/Sub channels (RESP3 pushes). After a dropped connection the
//!   subscriber reconnects and resubscribes by itself; what was published meanwhile is lost,
//!   as Pub/Sub promises.
//! - **Durable** topics are streams with one consumer group per service. An entry is
//!   acknowledged (`XACK`, batched) after the local handlers succeeded; a failed one stays
//!   pending and is claimed again (`XAUTOCLAIM`) once idle for
//!   [`claim_idle`](BridgeBuilder::claim_idle), by this instance or, after a crash, by a live
//!   one; a dead letter goes to the stream `<stream>:dead` with its reason. Streams are trimmed
//!   (`MAXLEN ~`). Writes are pipelined in batches.
//!
//! ```no_run
//! use eventbus_core::bridge::Bridge;
//! use eventbus_core::redis::{GroupStart, RedisTransport};
//! use eventbus_core::{Event, EventBus};
//! use serde::{Deserialize, Serialize};
//! use std::time::Duration;
//!
//! #[derive(Event, Clone, Serialize, Deserialize)]
//! #[event(name = "orders.placed", distributed)]
//! struct OrderPlaced { id: u64 }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let bridge = Bridge::builder(RedisTransport::new("redis://127.0.0.1:6379/"), "billing")
//!     .durable::<OrderPlaced>("shop:orders")
//!     .claim_idle(Duration::from_secs(10)) // Redis only: retry delay, crash recovery
//!     .group_start(GroupStart::Beginning)  // Redis only: a new group reads the history
//!     .build()?;
//! let bus = EventBus::builder().middleware(bridge.outbound()).build()?;
//! bridge.start(&bus).await?;
//! # Ok(()) }
//! ```

mod publisher;
mod pubsub;
mod streams;

use crate::bridge::{
    BridgeBuilder, Mode, Publisher, Route, Subscriber, Subscription, Transport, TransportError,
};
use crate::handler::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, IntoConnectionInfo, ProtocolVersion};
use std::time::Duration;

/// The Redis transport; give it to [`Bridge::builder`](crate::bridge::Bridge::builder).
#[derive(Debug)]
pub struct RedisTransport {
    url: String,
    client: Option<Client>,
    settings: Settings,
}

/// Tunables of the Redis transport.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) claim_idle: Duration,
    pub(crate) block: Duration,
    pub(crate) batch: usize,
    pub(crate) stream_maxlen: usize,
    pub(crate) group_start: GroupStart,
    pub(crate) events_per_entry: usize,
}

impl RedisTransport {
    /// The Redis server at `url`, e.g. `redis://127.0.0.1:6379/`. The URL is checked when the
    /// bridge is built.
    pub fn new(url: impl Into<String>) -> Self {
        RedisTransport {
            url: url.into(),
            client: None,
            settings: Settings {
                claim_idle: Duration::from_secs(30),
                block: Duration::from_secs(1),
                batch: 256,
                stream_maxlen: 100_000,
                group_start: GroupStart::Now,
                events_per_entry: 1,
            },
        }
    }

    fn client(&self) -> Result<&Client, TransportError> {
        self.client
            .as_ref()
            .ok_or_else(|| error("the transport was not checked by a bridge build"))
    }

    /// A connection that reconnects by itself; `response_timeout` must exceed any `BLOCK`.
    async fn manager(
        &self,
        response_timeout: Option<Duration>,
    ) -> Result<ConnectionManager, TransportError> {
        let mut config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_max_delay(Duration::from_secs(2));
        if let Some(timeout) = response_timeout {
            config = config.set_response_timeout(Some(timeout));
        }
        ConnectionManager::new_with_config(self.client()?.clone(), config)
            .await
            .map_err(error)
    }
}

impl Transport for RedisTransport {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn check(&mut self, routes: &[Route]) -> Result<(), TransportError> {
        match self.settings.events_per_entry {
            0 => {
                return Err(error(
                    "events_per_entry(0): an entry holds at least one event",
                ))
            }
            1 => {}
            _ if !routes.iter().any(|r| r.mode() == Mode::Durable) => {
                return Err(error(
                    "events_per_entry packs durable events, and no route of this bridge is durable",
                ))
            }
            _ => {}
        }
        let info = self.url.as_str().into_connection_info().map_err(error)?;
        // Pub/Sub pushes need RESP3; everything else works the same on it.
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        self.client = Some(Client::open(info.set_redis_settings(resp3)).map_err(error)?);
        Ok(())
    }

    fn publisher(&self) -> BoxFuture<'_, Result<Box<dyn Publisher>, TransportError>> {
        Box::pin(async move {
            let connection = self.manager(None).await?;
            let publisher = publisher::RedisPublisher::new(connection, &self.settings);
            Ok(Box::new(publisher) as Box<dyn Publisher>)
        })
    }

    fn subscribe(
        &self,
        subscription: Subscription,
    ) -> BoxFuture<'_, Result<Box<dyn Subscriber>, TransportError>> {
        Box::pin(async move {
            let subscriber: Box<dyn Subscriber> = match subscription.mode() {
                Mode::Broadcast => Box::new(
                    pubsub::PubSubSubscriber::connect(self.client()?, subscription.topic()).await?,
                ),
                _ => {
                    let reader = self
                        .manager(Some(self.settings.block + Duration::from_secs(5)))
                        .await?;
                    let commands = self.manager(None).await?;
                    Box::new(
                        streams::StreamSubscriber::connect(
                            subscription,
                            self.settings.clone(),
                            reader,
                            commands,
                        )
                        .await?,
                    )
                }
            };
            Ok(subscriber)
        })
    }
}

/// Settings only Redis has, on the bridge builder.
impl BridgeBuilder<RedisTransport> {
    /// How long a durable entry stays pending (unacknowledged) before it is delivered again,
    /// to this or another instance: the retry delay after a failure and the time to recover
    /// a crashed instance's work. Default 30 s.
    pub fn claim_idle(mut self, idle: Duration) -> Self {
        self.transport.settings.claim_idle = idle;
        self
    }

    /// How long one blocking read waits for new entries; shutdown takes at most about this
    /// long to stop reading. Default 1 s.
    pub fn block(mut self, block: Duration) -> Self {
        self.transport.settings.block = block.max(Duration::from_millis(1));
        self
    }

    /// Approximate stream length kept (`XADD MAXLEN ~`). Default 100 000.
    pub fn stream_maxlen(mut self, maxlen: usize) -> Self {
        self.transport.settings.stream_maxlen = maxlen;
        self
    }

    /// Packs up to `events` durable events bound for one stream into a single stream entry,
    /// when the bridge writes them together (a busy producer); an event written alone still
    /// gets an entry of its own. Default 1: one event per entry.
    ///
    /// Fewer entries mean fewer server operations and replies per event (each entry costs the
    /// server an `XADD`, its share of an `XREADGROUP` and an `XACK`), which is what bounds a
    /// busy stream's throughput; see docs/performance.md. The guarantees stay: an entry is
    /// acknowledged once every event in it was handled or dead-lettered. What changes:
    ///
    /// - a packed entry holds its events as a JSON array in the field `ces` (the CloudEvents
    ///   JSON batch format) instead of one CloudEvent in `ce`. Every eventbus consumer reads
    ///   both; a consumer of another stack has to read `ces` too (docs/transports.md shows it
    ///   in Python). Upgrade the consumers before turning this on;
    /// - an event of a packed entry that fails and is retried brings its entry-mates back
    ///   with it: those are skipped as duplicates while the de-duplication window still holds
    ///   them, and handled again after;
    /// - `stream_maxlen` counts entries, so a stream keeps up to that many entries' events.
    ///
    /// `0` is an error when the bridge is built, and so is a value above 1 on a bridge with
    /// no durable route (it would change nothing).
    pub fn events_per_entry(mut self, events: usize) -> Self {
        self.transport.settings.events_per_entry = events;
        self
    }

    /// Where this service's consumer group starts reading a stream when the group does not
    /// exist yet. Default [`GroupStart::Now`]: only entries added from then on.
    pub fn group_start(mut self, start: GroupStart) -> Self {
        self.transport.settings.group_start = start;
        self
    }
}

/// Where a consumer group that does not exist yet starts reading its stream; see
/// [`BridgeBuilder::group_start`]. An existing group keeps its position.
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

fn error(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> TransportError {
    TransportError::new("redis", error)
}
