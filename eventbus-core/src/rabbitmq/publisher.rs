//! Sending: one channel in confirm mode. A batch is published without waiting, then its
//! confirms are awaited together, so a round trip does not sit between two events.

use super::{declare_topic, error, open, routing_key, CONTENT_TYPE};
use crate::bridge::{Message, Mode, Publisher, TransportError};
use crate::handler::BoxFuture;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use std::collections::HashSet;

pub(crate) struct RabbitPublisher {
    url: String,
    /// `None` after a failure: opened again (and the exchanges declared again) on the next
    /// batch.
    open: Option<Open>,
}

struct Open {
    /// Kept alive: dropping it closes the channel.
    _connection: Connection,
    channel: Channel,
    declared: HashSet<String>,
}

impl RabbitPublisher {
    pub(crate) async fn connect(url: String) -> Result<Self, TransportError> {
        let mut publisher = RabbitPublisher { url, open: None };
        publisher.ensure_open().await?;
        Ok(publisher)
    }

    async fn ensure_open(&mut self) -> Result<&mut Open, TransportError> {
        if self.open.is_none() {
            let (connection, channel) = open(&self.url).await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(error)?;
            self.open = Some(Open {
                _connection: connection,
                channel,
                declared: HashSet::new(),
            });
        }
        Ok(self.open.as_mut().expect("opened above"))
    }

    async fn publish_batch(
        &mut self,
        batch: &[Message],
    ) -> Result<Vec<Result<(), TransportError>>, TransportError> {
        let open = self.ensure_open().await?;
        for message in batch {
            if !open.declared.contains(message.topic()) {
                declare_topic(&open.channel, message.topic()).await?;
                open.declared.insert(message.topic().to_owned());
            }
        }
        let mut confirms = Vec::with_capacity(batch.len());
        for message in batch {
            let persistent = message.mode() == Mode::Durable;
            let properties = BasicProperties::default()
                .with_content_type(CONTENT_TYPE.into())
                .with_delivery_mode(if persistent { 2 } else { 1 });
            let confirm = open
                .channel
                .basic_publish(
                    message.topic().into(),
                    routing_key(message.event_type()).into(),
                    // A durable message no queue takes comes back (basic.return), so its
                    // loss is counted, not silent.
                    BasicPublishOptions {
                        mandatory: persistent,
                        ..BasicPublishOptions::default()
                    },
                    message.payload().as_bytes(),
                    properties,
                )
                .await
                .map_err(error)?;
            confirms.push(confirm);
        }
        let mut replies = Vec::with_capacity(confirms.len());
        for confirm in confirms {
            let confirmation = confirm.await.map_err(error)?;
            replies.push(match confirmation {
                Confirmation::Nack(_) => Err(error("the broker refused the message (basic.nack)")),
                Confirmation::Ack(Some(returned)) => Err(TransportError::unroutable(
                    "rabbitmq",
                    format!(
                        "no queue is bound for it (basic.return: {}): no service has \
                         subscribed to the topic yet",
                        returned.reply_text
                    ),
                )),
                Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            });
        }
        Ok(replies)
    }
}

impl Publisher for RabbitPublisher {
    fn publish<'a>(
        &'a mut self,
        batch: &'a [Message],
    ) -> BoxFuture<'a, Result<Vec<Result<(), TransportError>>, TransportError>> {
        Box::pin(async move {
            let published = self.publish_batch(batch).await;
            if published.is_err() {
                // The channel is unusable after most errors: open a fresh one next time.
                self.open = None;
            }
            published
        })
    }
}
