//! Receiving durable events: a consumer in this service's group on one stream. Entries are
//! acknowledged after the local handlers succeeded, retried by claiming them again once idle,
//! and moved to `<stream>:dead` after too many deliveries or when they cannot be decoded.

use super::{BridgeError, Diagnostics, Inner, Unhandled};
use crate::wire::Envelope;
use crate::EventBus;
use redis::aio::ConnectionManager;
use redis::streams::{
    StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, RedisResult, Value};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

pub(crate) struct Consumer {
    inner: Arc<Inner>,
    stream: String,
    dead_letter: String,
    /// For `XREADGROUP BLOCK`: its response timeout exceeds the block time.
    reader: ConnectionManager,
    /// For acknowledgements, claims and dead letters, never blocked behind a read.
    commands: ConnectionManager,
    seen: Dedup,
    /// Entries handled in the current batch, acknowledged together in one round trip when the
    /// batch is done (an ack per entry would cap throughput at one round trip per event).
    acks: Vec<String>,
}

impl Consumer {
    pub(crate) async fn connect(inner: Arc<Inner>, stream: String) -> Result<Self, BridgeError> {
        let reader = inner
            .manager(Some(inner.settings.block + Duration::from_secs(5)))
            .await?;
        let commands = inner.manager(None).await?;
        let mut consumer = Consumer {
            dead_letter: format!("{stream}:dead"),
            seen: Dedup::new(inner.settings.dedup_window),
            acks: Vec::new(),
            inner,
            stream,
            reader,
            commands,
        };
        consumer.ensure_group().await.map_err(BridgeError::Redis)?;
        Ok(consumer)
    }

    fn group(&self) -> &str {
        &self.inner.service
    }

    /// Creates the service's group, starting where the settings say, unless it exists.
    async fn ensure_group(&mut self) -> RedisResult<()> {
        let created: RedisResult<()> = self
            .commands
            .xgroup_create_mkstream(
                &self.stream,
                &*self.inner.service,
                self.inner.settings.group_start.id(),
            )
            .await;
        match created {
            Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    pub(crate) async fn run(mut self, bus: EventBus) {
        let settings = self.inner.settings.clone();
        let claim_every = (settings.claim_idle / 2).max(Duration::from_millis(20));
        let mut last_claim = Instant::now();
        let mut backoff = None;
        while !self.inner.stopping() {
            if last_claim.elapsed() >= claim_every {
                last_claim = Instant::now();
                if let Err(error) = self.claim(&bus).await {
                    self.connection_error(&error, &mut backoff).await;
                    continue;
                }
            }
            let options = StreamReadOptions::default()
                .group(&*self.inner.service, &self.inner.instance)
                .count(settings.batch)
                .block(settings.block.as_millis() as usize);
            // The previous batch is acknowledged on the command connection while the next one
            // is read, so a round trip does not sit between batches.
            let mut reader = self.reader.clone();
            let stream = self.stream.clone();
            let (read, ()) = tokio::join!(
                async move {
                    let read: RedisResult<Option<StreamReadReply>> =
                        reader.xread_options(&[&stream], &[">"], &options).await;
                    read
                },
                self.flush_acks()
            );
            match read {
                Ok(reply) => {
                    backoff = None;
                    for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
                        self.handle(&bus, entry, 1).await;
                    }
                }
                Err(error) if error.code() == Some("NOGROUP") => {
                    // The stream or group vanished (e.g. a server restarted without data).
                    if let Err(error) = self.ensure_group().await {
                        self.connection_error(&error, &mut backoff).await;
                    }
                }
                Err(error) => self.connection_error(&error, &mut backoff).await,
            }
        }
        self.flush_acks().await;
    }

    /// Counts and logs a failed round trip, then waits before the next try (`backoff` holds
    /// the waits since the last success).
    async fn connection_error(
        &self,
        error: &redis::RedisError,
        backoff: &mut Option<backon::ExponentialBackoff>,
    ) {
        Diagnostics::bump(&self.inner.diagnostics.connection_errors);
        tracing::warn!(stream = %self.stream, %error, "durable consumer: Redis error; retrying");
        let wait = backoff
            .get_or_insert_with(Inner::reconnect_backoff)
            .next()
            .unwrap_or(Duration::from_secs(2));
        tokio::time::sleep(wait).await;
    }

    /// Claims entries idle for longer than `claim_idle`: this instance's failed ones and those
    /// of crashed instances.
    async fn claim(&mut self, bus: &EventBus) -> RedisResult<()> {
        let idle = self.inner.settings.claim_idle.as_millis() as u64;
        let mut cursor = "0-0".to_owned();
        loop {
            let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
                .arg(&self.stream)
                .arg(self.group())
                .arg(&self.inner.instance)
                .arg(idle)
                .arg(&cursor)
                .arg("COUNT")
                .arg(self.inner.settings.batch)
                .query_async(&mut self.commands)
                .await?;
            for entry in reply.claimed {
                let deliveries = match self.deliveries(&entry.id).await {
                    Ok(deliveries) => deliveries,
                    Err(error) => {
                        self.flush_acks().await;
                        return Err(error);
                    }
                };
                self.handle(bus, entry, deliveries).await;
            }
            self.flush_acks().await;
            cursor = reply.next_stream_id;
            if cursor == "0-0" || self.inner.stopping() {
                return Ok(());
            }
        }
    }

    /// How many times the entry was delivered, claims included.
    async fn deliveries(&mut self, id: &str) -> RedisResult<usize> {
        let group = self.inner.service.clone();
        let pending: StreamPendingCountReply = self
            .commands
            .xpending_count(&self.stream, &*group, id, id, 1)
            .await?;
        Ok(pending.ids.first().map_or(1, |p| p.times_delivered))
    }

    async fn handle(&mut self, bus: &EventBus, mut entry: StreamId, deliveries: usize) {
        let diagnostics = self.inner.diagnostics.clone();
        Diagnostics::bump(&diagnostics.received);
        let payload = match entry.map.remove("ce") {
            Some(Value::BulkString(bytes)) => bytes,
            Some(Value::SimpleString(text)) => text.into_bytes(),
            _ => {
                Diagnostics::bump(&diagnostics.malformed);
                return self
                    .dead_letter(&entry, None, "the entry has no `ce` field")
                    .await;
            }
        };
        let own = |envelope: &Envelope| envelope.source() == &*self.inner.service;
        let incoming = match Envelope::decode_unless(&payload, own) {
            Ok(Some(incoming)) => incoming,
            // Its own bus handled it when it was sent.
            Ok(None) => {
                Diagnostics::bump(&diagnostics.skipped_own);
                self.acks.push(entry.id);
                return;
            }
            Err(error) => {
                diagnostics.decode_error(&error);
                tracing::warn!(stream = %self.stream, id = %entry.id, %error, "undecodable entry");
                return self
                    .dead_letter(&entry, Some(&payload), &error.to_string())
                    .await;
            }
        };
        let key = format!("{}\u{0}{}", incoming.source, incoming.remote_id);
        if self.seen.contains(&key) {
            Diagnostics::bump(&diagnostics.duplicates);
            self.acks.push(entry.id);
            return;
        }
        let report = {
            let (event, meta) = incoming.into_event();
            let span = crate::wire::receive_span(&meta);
            bus.publish_received(event, meta).instrument(span).await
        };
        Diagnostics::bump(&diagnostics.dispatched);
        if report.is_unhandled() {
            Diagnostics::bump(&diagnostics.unhandled);
            let name = report.event_type().name();
            let reason = format!("no local handler takes `{name}`");
            return match self.inner.settings.unhandled {
                Unhandled::Acknowledge => self.acks.push(entry.id),
                Unhandled::DeadLetter => self.dead_letter(&entry, Some(&payload), &reason).await,
                Unhandled::Retry if deliveries >= self.inner.settings.max_deliveries as usize => {
                    let reason = format!("{reason} after {deliveries} deliveries");
                    self.dead_letter(&entry, Some(&payload), &reason).await
                }
                Unhandled::Retry => {
                    tracing::warn!(stream = %self.stream, id = %entry.id, event = name, deliveries, "entry taken by no handler; left pending, it will be delivered again");
                }
            };
        }
        match report.into_result() {
            Ok(_) => {
                self.seen.insert(key);
                self.acks.push(entry.id);
            }
            Err(error) => {
                Diagnostics::bump(&diagnostics.handler_failures);
                if deliveries >= self.inner.settings.max_deliveries as usize {
                    let reason = format!("failed {deliveries} deliveries; last: {error}");
                    self.dead_letter(&entry, Some(&payload), &reason).await;
                } else {
                    tracing::warn!(stream = %self.stream, id = %entry.id, deliveries, %error, "entry failed; it will be delivered again");
                }
            }
        }
    }

    async fn ack(&mut self, id: &str) {
        self.acks.push(id.to_owned());
        self.flush_acks().await;
    }

    /// Acknowledges the handled entries of the batch in one `XACK`.
    async fn flush_acks(&mut self) {
        if self.acks.is_empty() {
            return;
        }
        let acked: RedisResult<()> = self
            .commands
            .xack(&self.stream, &*self.inner.service, &self.acks)
            .await;
        if let Err(error) = acked {
            // Unacknowledged, they will be claimed and (de-duplicated) delivered again.
            Diagnostics::bump(&self.inner.diagnostics.connection_errors);
            tracing::warn!(stream = %self.stream, entries = self.acks.len(), %error, "ack failed");
        }
        self.acks.clear();
    }

    /// Moves an entry to the dead-letter stream with its reason, then acknowledges it. If the
    /// dead-letter write fails the entry stays pending and is tried again later.
    async fn dead_letter(&mut self, entry: &StreamId, payload: Option<&[u8]>, reason: &str) {
        let written: RedisResult<()> = redis::cmd("XADD")
            .arg(&self.dead_letter)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.inner.settings.stream_maxlen)
            .arg("*")
            .arg("reason")
            .arg(reason)
            .arg("stream")
            .arg(&self.stream)
            .arg("entry")
            .arg(&entry.id)
            .arg("group")
            .arg(self.group())
            .arg("consumer")
            .arg(&self.inner.instance)
            .arg("payload")
            .arg(payload.unwrap_or_default())
            .query_async(&mut self.commands)
            .await;
        match written {
            Ok(()) => {
                Diagnostics::bump(&self.inner.diagnostics.dead_lettered);
                tracing::warn!(stream = %self.stream, id = %entry.id, reason, "entry moved to the dead-letter stream");
                self.ack(&entry.id).await;
            }
            Err(error) => {
                Diagnostics::bump(&self.inner.diagnostics.connection_errors);
                tracing::warn!(stream = %self.stream, id = %entry.id, %error, "dead-letter write failed; the entry stays pending");
            }
        }
    }
}

/// The last `capacity` keys seen, oldest forgotten first.
struct Dedup {
    capacity: usize,
    order: VecDeque<String>,
    keys: HashSet<String>,
}

impl Dedup {
    fn new(capacity: usize) -> Self {
        Dedup {
            capacity,
            order: VecDeque::new(),
            keys: HashSet::new(),
        }
    }

    fn contains(&self, key: &str) -> bool {
        self.keys.contains(key)
    }

    fn insert(&mut self, key: String) {
        if self.capacity == 0 || !self.keys.insert(key.clone()) {
            return;
        }
        self.order.push_back(key);
        if self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.keys.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Dedup;

    #[test]
    fn dedup_forgets_the_oldest_past_capacity() {
        let mut dedup = Dedup::new(2);
        dedup.insert("a".into());
        dedup.insert("b".into());
        dedup.insert("a".into());
        assert!(dedup.contains("a") && dedup.contains("b"));
        dedup.insert("c".into());
        assert!(!dedup.contains("a"));
        assert!(dedup.contains("b") && dedup.contains("c"));
    }
}
