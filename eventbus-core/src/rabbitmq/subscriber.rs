//! Receiving: a consumer on the service's durable queue (or on this instance's own queue for
//! broadcasts), declared again with its bindings whenever the connection is opened again.

use super::{declare_topic, error, open, routing_key, Settings, CONTENT_TYPE, DEAD_EXCHANGE};
use crate::bridge::{Delivery, Mode, Outcome, Settled, Subscriber, Subscription, TransportError};
use crate::handler::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, Consumer, ExchangeKind};
use std::time::Duration;

/// How long one `receive` waits for a first delivery before it hands back an empty batch.
const WAIT: Duration = Duration::from_millis(500);

pub(crate) struct RabbitSubscriber {
    url: String,
    subscription: Subscription,
    settings: Settings,
    /// `None` after a failure: opened and declared again on the next `receive`.
    open: Option<Open>,
    /// Counts the channels opened: a delivery tag is only valid on the channel it came from.
    generation: u64,
}

struct Open {
    connection: Connection,
    channel: Channel,
    consumer: Consumer,
    /// The stream of deliveries failed while a batch was being gathered: reported next.
    failed: Option<lapin::Error>,
}

impl RabbitSubscriber {
    pub(crate) async fn connect(
        url: String,
        subscription: Subscription,
        settings: Settings,
    ) -> Result<Self, TransportError> {
        let mut subscriber = RabbitSubscriber {
            url,
            subscription,
            settings,
            open: None,
            generation: 0,
        };
        subscriber.ensure_open().await?;
        Ok(subscriber)
    }

    fn durable(&self) -> bool {
        self.subscription.mode() == Mode::Durable
    }

    fn queue(&self) -> String {
        format!(
            "{}.{}",
            self.subscription.service(),
            self.subscription.topic()
        )
    }

    fn dead_queue(&self) -> String {
        format!("{}.dead", self.queue())
    }

    /// Opens a channel and declares the topic, the queue, its bindings and (durable) the
    /// dead-letter queue; then starts consuming.
    async fn ensure_open(&mut self) -> Result<&mut Open, TransportError> {
        if self.open.is_none() {
            let (connection, channel) = open(&self.url).await?;
            let topic = self.subscription.topic();
            declare_topic(&channel, topic).await?;
            let queue = if self.durable() {
                self.declare_durable(&channel).await?
            } else {
                let options = QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                };
                let queue = channel
                    .queue_declare("".into(), options, FieldTable::default())
                    .await
                    .map_err(error)?;
                queue.name().as_str().to_owned()
            };
            for scope in self.subscription.scopes() {
                let binding = format!("{}.#", routing_key(scope));
                channel
                    .queue_bind(
                        queue.as_str().into(),
                        topic.into(),
                        binding.into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(error)?;
            }
            let options = BasicConsumeOptions {
                no_ack: !self.durable(),
                ..BasicConsumeOptions::default()
            };
            let consumer = channel
                .basic_consume(
                    queue.as_str().into(),
                    self.subscription.instance().into(),
                    options,
                    FieldTable::default(),
                )
                .await
                .map_err(error)?;
            self.generation += 1;
            self.open = Some(Open {
                connection,
                channel,
                consumer,
                failed: None,
            });
        }
        Ok(self.open.as_mut().expect("opened above"))
    }

    /// The service's quorum queue and its dead-letter queue; returns the queue's name.
    async fn declare_durable(&self, channel: &Channel) -> Result<String, TransportError> {
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .basic_qos(self.settings.prefetch, BasicQosOptions::default())
            .await
            .map_err(error)?;
        // Dead letters are published with confirms before the delivery is acknowledged.
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(error)?;
        channel
            .exchange_declare(
                DEAD_EXCHANGE.into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(error)?;
        let dead = self.dead_queue();
        channel
            .queue_declare(dead.as_str().into(), durable, FieldTable::default())
            .await
            .map_err(error)?;
        channel
            .queue_bind(
                dead.as_str().into(),
                DEAD_EXCHANGE.into(),
                dead.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(error)?;
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(DEAD_EXCHANGE.into()),
        );
        arguments.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(dead.as_str().into()),
        );
        let queue = self.queue();
        channel
            .queue_declare(queue.as_str().into(), durable, arguments)
            .await
            .map_err(error)?;
        Ok(queue)
    }

    async fn next_batch(&mut self) -> Result<Vec<Delivery>, TransportError> {
        let limit = usize::from(self.settings.prefetch);
        let generation = self.generation;
        let open = self.ensure_open().await?;
        if let Some(failed) = open.failed.take() {
            return Err(error(failed));
        }
        let first = match tokio::time::timeout(WAIT, open.consumer.next()).await {
            Err(_) => return Ok(Vec::new()),
            Ok(None) => return Err(error("the broker cancelled the consumer")),
            Ok(Some(Err(failure))) => return Err(error(failure)),
            Ok(Some(Ok(delivery))) => delivery,
        };
        let mut deliveries = vec![delivery(generation, first)];
        while deliveries.len() < limit {
            match open.consumer.next().now_or_never() {
                Some(Some(Ok(next))) => deliveries.push(delivery(generation, next)),
                Some(Some(Err(failure))) => {
                    open.failed = Some(failure);
                    break;
                }
                _ => break,
            }
        }
        Ok(deliveries)
    }

    async fn settle_all(&mut self, settled: Vec<Settled>) -> Result<(), TransportError> {
        if !self.durable() {
            return Ok(()); // auto-acknowledged
        }
        let generation = self.generation;
        let dead_queue = self.dead_queue();
        let retry_delay = self.settings.retry_delay;
        let topic = self.subscription.topic().to_owned();
        let Some(open) = self.open.as_ref() else {
            return Ok(()); // the channel is gone: the broker delivers them again
        };
        let mut acks = Vec::new();
        for Settled { delivery, outcome } in settled {
            let Some(tag) = tag_of(delivery.id(), generation) else {
                continue; // from an earlier channel: the broker delivers it again
            };
            match outcome {
                Outcome::Ack => acks.push(tag),
                Outcome::Retry => {
                    // Back to the queue once the delay is over; a lost channel requeues it too.
                    let channel = open.channel.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(retry_delay).await;
                        let options = BasicNackOptions {
                            requeue: true,
                            ..BasicNackOptions::default()
                        };
                        let _ = channel.basic_nack(tag, options).await;
                    });
                }
                Outcome::DeadLetter(reason) => {
                    let mut headers = FieldTable::default();
                    headers.insert(
                        "x-eventbus-reason".into(),
                        AMQPValue::LongString(reason.as_str().into()),
                    );
                    headers.insert(
                        "x-eventbus-topic".into(),
                        AMQPValue::LongString(topic.as_str().into()),
                    );
                    let properties = BasicProperties::default()
                        .with_content_type(CONTENT_TYPE.into())
                        .with_delivery_mode(2)
                        .with_headers(headers);
                    let confirm = open
                        .channel
                        .basic_publish(
                            DEAD_EXCHANGE.into(),
                            dead_queue.as_str().into(),
                            BasicPublishOptions::default(),
                            delivery.payload().unwrap_or_default(),
                            properties,
                        )
                        .await
                        .map_err(error)?
                        .await
                        .map_err(error)?;
                    if confirm.is_nack() {
                        return Err(error("the broker refused a dead letter"));
                    }
                    acks.push(tag);
                }
            }
        }
        let acked = acks
            .into_iter()
            .map(|tag| open.channel.basic_ack(tag, BasicAckOptions::default()));
        futures_util::future::try_join_all(acked)
            .await
            .map_err(error)?;
        Ok(())
    }
}

impl Subscriber for RabbitSubscriber {
    fn receive(&mut self) -> BoxFuture<'_, Result<Vec<Delivery>, TransportError>> {
        Box::pin(async move {
            let received = self.next_batch().await;
            if received.is_err() {
                self.open = None;
            }
            received
        })
    }

    fn settle(&mut self, settled: Vec<Settled>) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            let done = self.settle_all(settled).await;
            if done.is_err() {
                self.open = None;
            }
            done
        })
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(open) = self.open.take() {
                // Unacknowledged deliveries go back to the queue when the channel closes.
                let _ = open.channel.close(200, "shutdown".into()).await;
                let _ = open.connection.close(200, "shutdown".into()).await;
            }
        })
    }
}

/// A lapin delivery as the bridge sees it; its id is `<channel generation>:<delivery tag>`.
fn delivery(generation: u64, delivery: lapin::message::Delivery) -> Delivery {
    // Quorum queues count earlier deliveries; the first has no header.
    let earlier = delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|headers| headers.inner().get("x-delivery-count"))
        .and_then(count)
        .unwrap_or(0);
    let id = format!("{generation}:{}", delivery.delivery_tag);
    Delivery::new(id, delivery.data, earlier.saturating_add(1))
}

fn count(value: &AMQPValue) -> Option<u32> {
    let n: i64 = match value {
        AMQPValue::ShortShortInt(n) => (*n).into(),
        AMQPValue::ShortShortUInt(n) => (*n).into(),
        AMQPValue::ShortInt(n) => (*n).into(),
        AMQPValue::ShortUInt(n) => (*n).into(),
        AMQPValue::LongInt(n) => (*n).into(),
        AMQPValue::LongUInt(n) => (*n).into(),
        AMQPValue::LongLongInt(n) => *n,
        _ => return None,
    };
    u32::try_from(n).ok()
}

/// The delivery tag of a delivery id, if it is of the current channel.
fn tag_of(id: &str, generation: u64) -> Option<u64> {
    let (of, tag) = id.split_once(':')?;
    (of.parse::<u64>().ok()? == generation)
        .then(|| tag.parse().ok())
        .flatten()
}
