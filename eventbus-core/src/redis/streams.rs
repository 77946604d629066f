//! Receiving durable events: a consumer in the service's group on one stream. Entries are
//! acknowledged in batches, retried by claiming them again once idle, and dead-lettered to
//! `<stream>:dead`.

use super::{error, Settings};
use crate::bridge::{Delivery, Outcome, Settled, Subscriber, Subscription, TransportError};
use crate::handler::BoxFuture;
use redis::aio::ConnectionManager;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamPendingCountReply};
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
            let read = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(&self.group)
                .arg(&self.consumer)
                .arg("COUNT")
                .arg(self.settings.batch)
                .arg("BLOCK")
                .arg(self.settings.block.as_millis() as u64)
                .arg("STREAMS")
                .arg(&self.stream)
                .arg(">")
                .to_owned();
            // The previous batch is acknowledged on the command connection while the next one
            // is read, so a round trip does not sit between batches.
            let mut reader = self.reader.clone();
            let (read, acked) = tokio::join!(
                async move { read.query_async::<Value>(&mut reader).await },
                self.flush_acks()
            );
            if let Err(failure) = acked {
                // Unacknowledged, they stay pending and are claimed and (de-duplicated)
                // delivered again; the read goes on.
                tracing::warn!(stream = %self.stream, %failure, "ack failed");
            }
            match read {
                Ok(reply) => read_reply(reply).map_err(error),
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
                    Outcome::Ack => self.acks.push(delivery.into_id()),
                    // Left pending: claimed again once idle.
                    Outcome::Retry => {}
                    Outcome::DeadLetter(reason) => {
                        // If the write fails the entry stays pending and is tried again.
                        self.dead_letter(&delivery, &reason).await.map_err(error)?;
                        self.acks.push(delivery.into_id());
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

/// The entries of an `XREADGROUP` reply, read straight from its values: the redis crate's
/// `StreamReadReply` would build a map per entry and copy every value, a fifth of what the
/// consumer spends per event. `nil` (the block timed out) is no entries.
fn read_reply(reply: Value) -> RedisResult<Vec<Delivery>> {
    let streams = match reply {
        Value::Nil => return Ok(Vec::new()),
        // RESP2: [[stream, entries], ...]; RESP3: {stream: entries, ...}.
        Value::Array(streams) => streams
            .into_iter()
            .map(|pair| match pair {
                Value::Array(mut pair) if pair.len() == 2 => Ok(pair.swap_remove(1)),
                other => Err(unexpected("[stream, entries]", &other)),
            })
            .collect::<RedisResult<Vec<Value>>>()?,
        Value::Map(streams) => streams.into_iter().map(|(_, entries)| entries).collect(),
        other => return Err(unexpected("streams", &other)),
    };
    let mut deliveries = Vec::new();
    for entries in streams {
        let Value::Array(entries) = entries else {
            return Err(unexpected("entries", &entries));
        };
        deliveries.reserve(entries.len());
        for entry in entries {
            deliveries.push(read_entry(entry)?);
        }
    }
    Ok(deliveries)
}

/// One `[id, [field, value, ...]]` entry, delivered for the first time.
fn read_entry(entry: Value) -> RedisResult<Delivery> {
    let Value::Array(mut entry) = entry else {
        return Err(unexpected("[id, fields]", &entry));
    };
    let (fields, id) = match (entry.pop(), entry.pop()) {
        (Some(fields), Some(Value::BulkString(id))) if entry.is_empty() => (fields, id),
        _ => return Err(unexpected("[id, fields]", &Value::Array(entry))),
    };
    let id = String::from_utf8(id).map_err(|e| unexpected("a UTF-8 entry id", &e.as_bytes()))?;
    // A deleted entry comes back with `nil` fields.
    let Value::Array(fields) = fields else {
        return Ok(Delivery::unreadable(id, "the entry has no fields", 1));
    };
    let mut fields = fields.into_iter();
    let mut ce = None;
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        if matches!(&name, Value::BulkString(name) if name == b"ce") {
            ce = Some(value);
            break;
        }
    }
    Ok(ce_delivery(id, ce, 1))
}

fn unexpected(what: &str, got: &dyn std::fmt::Debug) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unexpected XREADGROUP reply",
        format!("expected {what}, got {got:?}"),
    ))
}

/// A claimed entry, delivered `times` times.
fn delivery(mut entry: StreamId, times: usize) -> Delivery {
    let times = u32::try_from(times).unwrap_or(u32::MAX);
    ce_delivery(entry.id, entry.map.remove("ce"), times)
}

/// An entry whose `ce` field (the CloudEvent) holds `ce`.
fn ce_delivery(id: String, ce: Option<Value>, times: u32) -> Delivery {
    match ce {
        Some(Value::BulkString(bytes)) => Delivery::new(id, bytes, times),
        Some(Value::SimpleString(text)) => Delivery::new(id, text.into_bytes(), times),
        Some(_) => Delivery::unreadable(id, "the entry's `ce` field is not a string", times),
        None => Delivery::unreadable(id, "the entry has no `ce` field", times),
    }
}

#[cfg(test)]
mod tests {
    use super::read_reply;
    use redis::Value;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    fn entry(id: &str, fields: &[&str]) -> Value {
        Value::Array(vec![
            bulk(id),
            Value::Array(fields.iter().map(|f| bulk(f)).collect()),
        ])
    }

    fn read(reply: Value) -> Vec<(String, Result<String, String>)> {
        read_reply(reply)
            .unwrap()
            .into_iter()
            .map(|d| {
                let payload = d
                    .payload()
                    .map(|p| String::from_utf8(p.to_vec()).unwrap())
                    .map_err(str::to_owned);
                (d.id().to_owned(), payload)
            })
            .collect()
    }

    #[test]
    fn reads_entries_in_order_from_resp2_and_resp3_replies() {
        let entries = Value::Array(vec![
            entry("1-0", &["ce", "{\"a\":1}"]),
            entry("2-0", &["other", "x", "ce", "{\"b\":2}"]),
        ]);
        let expected = vec![
            ("1-0".to_owned(), Ok("{\"a\":1}".to_owned())),
            ("2-0".to_owned(), Ok("{\"b\":2}".to_owned())),
        ];
        let resp2 = Value::Array(vec![Value::Array(vec![bulk("s"), entries.clone()])]);
        assert_eq!(read(resp2), expected);
        let resp3 = Value::Map(vec![(bulk("s"), entries)]);
        assert_eq!(read(resp3), expected);
        assert!(read(Value::Nil).is_empty());
    }

    #[test]
    fn an_entry_without_a_cloud_event_is_unreadable_not_an_error() {
        let entries = Value::Array(vec![
            entry("1-0", &["payload", "{}"]),
            Value::Array(vec![bulk("2-0"), Value::Nil]),
        ]);
        let reply = Value::Array(vec![Value::Array(vec![bulk("s"), entries])]);
        assert_eq!(
            read(reply),
            vec![
                (
                    "1-0".to_owned(),
                    Err("the entry has no `ce` field".to_owned())
                ),
                ("2-0".to_owned(), Err("the entry has no fields".to_owned())),
            ]
        );
    }

    #[test]
    fn a_reply_of_another_shape_is_an_error() {
        assert!(read_reply(Value::Int(3)).is_err());
        assert!(read_reply(Value::Array(vec![Value::Array(vec![bulk("s")])])).is_err());
        let bad_entry = Value::Array(vec![Value::Array(vec![
            bulk("s"),
            Value::Array(vec![Value::Array(vec![bulk("1-0")])]),
        ])]);
        assert!(read_reply(bad_entry).is_err());
    }
}
