//! RabbitMQ as a bridge transport, through `lapin`: the event hierarchy lives on the broker.
//!
//! Each topic is a durable **topic exchange**. An event is published with a routing key built
//! from its lineage, root first (`domain_event.order_event.orders_placed`: each type's name,
//! `.`, `*` and `#` replaced by `_`), and a subscription binds the lineage of each event type
//! it routes followed by `#`. So a service that routes `OrderEvent` receives `OrderPlaced`
//! without knowing that type exists, the way MassTransit binds an exchange per type to the
//! exchanges of its ancestors.
//!
//! - **Durable** topics: one durable quorum queue per service, `<service>.<topic>`, which the
//!   service's instances share (competing consumers, `prefetch` each). Messages are
//!   persistent and published with confirms: an event counts as sent once the broker confirms
//!   it. Deliveries are acknowledged after the local handlers succeeded; a failed one is
//!   returned to the queue after [`retry_delay`](BridgeBuilder::retry_delay) (the quorum
//!   queue counts deliveries, `x-delivery-count`); a dead letter is published, with its
//!   reason in the header `x-eventbus-reason`, to the exchange `eventbus.dead`, into the
//!   durable queue `<service>.<topic>.dead`, which is also the queue's own dead-letter target.
//!   A queue exists from the first start of its service. What is published to a topic before
//!   any service declared its queue reaches nobody (as on any RabbitMQ exchange), but not in
//!   silence: durable messages are published `mandatory`, the broker returns them, and the
//!   bridge counts each ([`send_unroutable`](crate::bridge::DiagnosticsSnapshot::send_unroutable))
//!   and logs it with its payload.
//! - **Broadcast** topics: an exclusive, auto-deleted queue per instance, auto-acknowledged,
//!   messages not persisted (at-most-once).
//!
//! Connections that drop are opened again with back-off, and the exchanges, queues and
//! bindings declared again. Order per queue holds with one consumer; competing consumers
//! share a queue without a global order.
//!
//! ```no_run
//! use eventbus_core::bridge::Bridge;
//! use eventbus_core::rabbitmq::RabbitTransport;
//! use eventbus_core::{Event, EventBus};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Event, Clone, Serialize, Deserialize)]
//! #[event(name = "orders.placed", distributed)]
//! struct OrderPlaced { id: u64 }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let transport = RabbitTransport::new("amqp://guest:guest@127.0.0.1:5672/%2f");
//! let bridge = Bridge::builder(transport, "billing")
//!     .durable::<OrderPlaced>("shop.orders")
//!     .build()?;
//! let bus = EventBus::builder().middleware(bridge.outbound()).build()?;
//! bridge.start(&bus).await?;
//! # Ok(()) }
//! ```

mod publisher;
mod subscriber;

use crate::bridge::{
    BridgeBuilder, Publisher, Route, Subscriber, Subscription, Transport, TransportError,
};
use crate::handler::BoxFuture;
use crate::EventType;
use lapin::options::ExchangeDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use std::time::Duration;

/// The exchange dead letters go to, routed by the name of their dead-letter queue.
pub(crate) const DEAD_EXCHANGE: &str = "eventbus.dead";
/// The CloudEvents structured content type.
pub(crate) const CONTENT_TYPE: &str = "application/cloudevents+json";

/// The RabbitMQ transport; give it to [`Bridge::builder`](crate::bridge::Bridge::builder).
#[derive(Clone, Debug)]
pub struct RabbitTransport {
    url: String,
    settings: Settings,
}

#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) prefetch: u16,
    pub(crate) retry_delay: Duration,
}

impl RabbitTransport {
    /// The broker at `url`, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f` (`%2f` is the default
    /// virtual host `/`). The URL is checked when the bridge is built.
    pub fn new(url: impl Into<String>) -> Self {
        RabbitTransport {
            url: url.into(),
            settings: Settings {
                prefetch: 256,
                retry_delay: Duration::from_secs(5),
            },
        }
    }
}

/// Opens a connection and a channel on it.
pub(crate) async fn open(url: &str) -> Result<(Connection, Channel), TransportError> {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .map_err(error)?;
    let channel = connection.create_channel().await.map_err(error)?;
    Ok((connection, channel))
}

/// Declares the topic exchange of `topic` (durable; declaring it again is a no-op).
pub(crate) async fn declare_topic(channel: &Channel, topic: &str) -> Result<(), TransportError> {
    channel
        .exchange_declare(
            topic.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(error)
}

/// The routing key an event of `event_type` is published with: its lineage, root first, one
/// word per type (its name, `.`, `*` and `#` replaced by `_`). A producer in another language
/// publishes with it; a consumer binds it followed by `.#` to get the type and every type
/// derived from it.
///
/// ```
/// use eventbus_core::Event;
///
/// #[derive(Event)]
/// #[event(name = "shop.order")]
/// struct OrderEvent;
///
/// #[derive(Event)]
/// #[event(extends = OrderEvent, name = "shop.order_placed")]
/// struct OrderPlaced { #[event(base)] base: OrderEvent }
///
/// assert_eq!(eventbus_core::rabbitmq::routing_key(OrderPlaced::TYPE), "shop_order.shop_order_placed");
/// ```
pub fn routing_key(event_type: &'static EventType) -> String {
    let mut words: Vec<String> = event_type
        .lineage()
        .map(|t| t.name().replace(['.', '*', '#'], "_"))
        .collect();
    words.reverse();
    words.join(".")
}

impl Transport for RabbitTransport {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    fn check(&mut self, routes: &[Route]) -> Result<(), TransportError> {
        self.url
            .parse::<lapin::uri::AMQPUri>()
            .map_err(|why| error(format!("bad AMQP URL `{}`: {why}", self.url)))?;
        for route in routes {
            // AMQP short strings: exchange, queue and routing key names up to 255 bytes.
            let key = routing_key(route.scope());
            if key.len() > 250 || route.topic().len() > 200 {
                return Err(error(format!(
                    "topic `{}` or the lineage of {} is too long for an AMQP name",
                    route.topic(),
                    route.scope()
                )));
            }
        }
        Ok(())
    }

    fn publisher(&self) -> BoxFuture<'_, Result<Box<dyn Publisher>, TransportError>> {
        Box::pin(async move {
            let publisher = publisher::RabbitPublisher::connect(self.url.clone()).await?;
            Ok(Box::new(publisher) as Box<dyn Publisher>)
        })
    }

    fn subscribe(
        &self,
        subscription: Subscription,
    ) -> BoxFuture<'_, Result<Box<dyn Subscriber>, TransportError>> {
        Box::pin(async move {
            let subscriber = subscriber::RabbitSubscriber::connect(
                self.url.clone(),
                subscription,
                self.settings.clone(),
            )
            .await?;
            Ok(Box::new(subscriber) as Box<dyn Subscriber>)
        })
    }
}

/// Settings only RabbitMQ has, on the bridge builder.
impl BridgeBuilder<RabbitTransport> {
    /// Unacknowledged durable deliveries one instance holds at a time (`basic.qos`). Default
    /// 256.
    pub fn prefetch(mut self, prefetch: u16) -> Self {
        self.transport.settings.prefetch = prefetch.max(1);
        self
    }

    /// How long a failed durable delivery waits before it goes back to the queue to be
    /// delivered again. Default 5 s.
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.transport.settings.retry_delay = delay;
        self
    }
}

pub(crate) fn error(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> TransportError {
    TransportError::new("rabbitmq", error)
}
