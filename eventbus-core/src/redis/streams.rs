//! Receiving durable events: a consumer in the service's group on one stream. Entries are
//! acknowledged in batches, retried by claiming them again once idle, and dead-lettered to
//! `<stream>:dead`.

use super::{error, Settings};
use crate::bridge::{Delivery, Outcome, Settled, Subscriber, Subscription, TransportError};
use crate::handler::BoxFuture;
use redis::aio::ConnectionManager;
use redis::streams::{
    StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, RedisResult, Value};
use std::time::{Duration, Instant};

pub(crate) struct StreamSubscriber {
    stream: String,
    dead_letter: String,
    group: String,
    consumer: String,
    settings: Settings,
    /// For `XREADGROUP BLOCK`: its response timeout exceeds the block time.
    reader: ConnectionManager,
    /// For acknowledgements, claims and dead letters, never blocked behind a read.
    commands: ConnectionManager,
    /// Entries handled, acknowledged together in one round trip with the next read (an ack
    /// per entry would cap throughput at one round trip per event).
    acks: Vec<String>,
    last_claim: Instant,
    /// Where the next page of claims starts, while one is under way.
    claim_cursor: Option<String>,
}

impl StreamSubscriber {
    pub(crate) async fn connect(
        subscription: Subscription,
        settings: Settings,
        reader: ConnectionManager,
        commands: ConnectionManager,
    ) -> Result<Self, TransportError> {
        let stream = subscription.topic().to_owned();
        let mut subscriber = StreamSubscriber {
            dead_letter: format!("{stream}:dead"),
            group: subscription.service().to_owned(),
            consumer: subscription.instance().to_owned(),
            stream,
            settings,
            reader,
            commands,
            acks: Vec::new(),
            // The first claim comes one period after start, as before.
            last_claim: Instant::now(),
            claim_cursor: None,
        };
        subscriber.ensure_group().await.map_err(error)?;
        Ok(subscriber)
    }

    /// Creates the service's group, starting where the settings say, unless it exists.
    async fn ensure_group(&mut self) -> RedisResult<()> {
        let created: RedisResult<()> = self
            .commands
            .xgroup_create_mkstream(&self.stream, &self.group, self.settings.group_start.id())
            .await;
        match created {
            Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// One page of entries idle for longer than `claim_idle`: this instance's failed ones and
    /// those of crashed instances, each with its delivery count.
    async fn claim(&mut self) -> RedisResult<Vec<Delivery>> {
        let idle = self.settings.claim_idle.as_millis() as u64;
        let cursor = self.claim_cursor.take().unwrap_or_else(|| "0-0".into());
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(idle)
            .arg(&cursor)
            .arg("COUNT")
            .arg(self.settings.batch)
            .query_async(&mut self.commands)
            .await?;
        if reply.next_stream_id != "0-0" {
            self.claim_cursor = Some(reply.next_stream_id);
        }
        let mut deliveries = Vec::with_capacity(reply.claimed.len());
        for entry in reply.claimed {
            let pending: StreamPendingCountReply = self
                .commands
                .xpending_count(&self.stream, &self.group, &entry.id, &entry.id, 1)
                .await?;
            let times = pending.ids.first().map_or(1, |p| p.times_delivered);
            deliveries.push(delivery(entry, times));
        }
        Ok(deliveries)
    }

    /// Acknowledges the handled entries in one `XACK`. A failed one stays pending, to be
    /// claimed and (de-duplicated) delivered again.
    async fn flush_acks(&mut self) -> RedisResult<()> {
        if self.acks.is_empty() {
            return Ok(());
        }
        let acks = std::mem::take(&mut self.acks);
        self.commands.xack(&self.stream, &self.group, &acks).await
    }

    async fn dead_letter(&mut self, delivery: &Delivery, reason: &str) -> RedisResult<()> {
        redis::cmd("XADD")
            .arg(&self.dead_letter)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.settings.stream_maxlen)
            .arg("*")
            .arg("reason")
            .arg(reason)
            .arg("stream")
            .arg(&self.stream)
            .arg("entry")
            .arg(delivery.id())
            .arg("group")
            .arg(&self.group)
            .arg("consumer")
            .arg(&self.consumer)
            .arg("payload")
            .arg(delivery.payload().unwrap_or_default())
            .query_async(&mut self.commands)
            .await
    }
}

impl Subscriber for StreamSubscriber {
    fn receive(&mut self) -> BoxFuture<'_, Result<Vec<Delivery>, TransportError>> {
        Box::pin(async move {
            let claim_every = (self.settings.claim_idle / 2).max(Duration::from_millis(20));
            if self.claim_cursor.is_some() || self.last_claim.elapsed() >= claim_every {
                self.last_claim = Instant::now();
                self.flush_acks().await.map_err(error)?;
                let claimed = self.claim().await.map_err(error)?;
                if !claimed.is_empty() {
                    return Ok(claimed);
                }
            }
            let options = StreamReadOptions::default()
                .group(&self.group, &self.consumer)
                .count(self.settings.batch)
                .block(self.settings.block.as_millis() as usize);
            // The previous batch is acknowledged on the command connection while the next one
            // is read, so a round trip does not sit between batches.
            let mut reader = self.reader.clone();
            let stream = self.stream.clone();
            let (read, acked) = tokio::join!(
                async move {
                    let read: RedisResult<Option<StreamReadReply>> =
                        reader.xread_options(&[&stream], &[">"], &options).await;
                    read
                },
                self.flush_acks()
            );
            if let Err(failure) = acked {
                // Unacknowledged, they stay pending and are claimed and (de-duplicated)
                // delivered again; the read goes on.
                tracing::warn!(stream = %self.stream, %failure, "ack failed");
            }
            match read {
                Ok(reply) => Ok(reply
                    .into_iter()
                    .flat_map(|r| r.keys)
                    .flat_map(|k| k.ids)
                    .map(|entry| delivery(entry, 1))
                    .collect()),
                Err(failure) if failure.code() == Some("NOGROUP") => {
                    // The stream or group vanished (e.g. a server restarted without data).
                    self.ensure_group().await.map_err(error)?;
                    Ok(Vec::new())
                }
                Err(failure) => Err(error(failure)),
            }
        })
    }

    fn settle(&mut self, settled: Vec<Settled>) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            for Settled { delivery, outcome } in settled {
                match outcome {
                    Outcome::Ack => self.acks.push(delivery.id().to_owned()),
                    // Left pending: claimed again once idle.
                    Outcome::Retry => {}
                    Outcome::DeadLetter(reason) => {
                        // If the write fails the entry stays pending and is tried again.
                        self.dead_letter(&delivery, &reason).await.map_err(error)?;
                        self.acks.push(delivery.id().to_owned());
                    }
                }
            }
            Ok(())
        })
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(failure) = self.flush_acks().await {
                tracing::warn!(stream = %self.stream, %failure, "final ack failed; the entries stay pending");
            }
        })
    }
}

fn delivery(mut entry: StreamId, times: usize) -> Delivery {
    let times = u32::try_from(times).unwrap_or(u32::MAX);
    match entry.map.remove("ce") {
        Some(Value::BulkString(bytes)) => Delivery::new(entry.id, bytes, times),
        Some(Value::SimpleString(text)) => Delivery::new(entry.id, text.into_bytes(), times),
        _ => Delivery::unreadable(entry.id, "the entry has no `ce` field", times),
    }
}
