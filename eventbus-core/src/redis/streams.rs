//! Receiving durable events: a consumer in the service's group on one stream. Entries are
//! acknowledged in batches, retried by claiming them again once idle, and dead-lettered to
//! `<stream>:dead`.

use super::publisher::{EVENT_FIELD, PACKED_FIELD};
use super::{error, Settings};
use crate::bridge::{Delivery, Outcome, Settled, Subscriber, Subscription, TransportError};
use crate::handler::BoxFuture;
use redis::aio::ConnectionManager;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamPendingCountReply};
use redis::{AsyncCommands, RedisResult, Value};
use serde_json::value::RawValue;
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
            claimed_deliveries(entry, times, &mut deliveries);
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

    /// The bridge settles each batch whole and in order, so the events of a packed entry
    /// arrive together: the entry is acknowledged once none of them is to be retried.
    fn settle(&mut self, settled: Vec<Settled>) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            let mut settled = settled.into_iter().peekable();
            while let Some(Settled {
                mut delivery,
                mut outcome,
            }) = settled.next()
            {
                // One entry at a time: a packed entry's events follow one another, under its id.
                let mut retry = false;
                loop {
                    match outcome {
                        Outcome::Ack => {}
                        // Left pending: claimed again once idle.
                        Outcome::Retry => retry = true,
                        // If the write fails the entry stays pending and is tried again.
                        Outcome::DeadLetter(reason) => {
                            self.dead_letter(&delivery, &reason).await.map_err(error)?
                        }
                    }
                    let same_entry = |next: &Settled| next.delivery.id() == delivery.id();
                    let Some(next) = settled.next_if(same_entry) else {
                        break;
                    };
                    (delivery, outcome) = (next.delivery, next.outcome);
                }
                if !retry {
                    self.acks.push(delivery.into_id());
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
            read_entry(entry, &mut deliveries)?;
        }
    }
    Ok(deliveries)
}

/// The events of one `[id, [field, value, ...]]` entry, delivered for the first time.
fn read_entry(entry: Value, deliveries: &mut Vec<Delivery>) -> RedisResult<()> {
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
        deliveries.push(Delivery::unreadable(id, "the entry has no fields", 1));
        return Ok(());
    };
    let mut fields = fields.into_iter();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        let packed = match &name {
            Value::BulkString(name) if name == EVENT_FIELD.as_bytes() => false,
            Value::BulkString(name) if name == PACKED_FIELD.as_bytes() => true,
            _ => continue,
        };
        entry_deliveries(id, value, packed, 1, deliveries);
        return Ok(());
    }
    deliveries.push(no_event(id, 1));
    Ok(())
}

fn unexpected(what: &str, got: &dyn std::fmt::Debug) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unexpected XREADGROUP reply",
        format!("expected {what}, got {got:?}"),
    ))
}

/// The events of a claimed entry, delivered `times` times.
fn claimed_deliveries(mut entry: StreamId, times: usize, deliveries: &mut Vec<Delivery>) {
    let times = u32::try_from(times).unwrap_or(u32::MAX);
    match (
        entry.map.remove(EVENT_FIELD),
        entry.map.remove(PACKED_FIELD),
    ) {
        (Some(event), _) => entry_deliveries(entry.id, event, false, times, deliveries),
        (None, Some(events)) => entry_deliveries(entry.id, events, true, times, deliveries),
        (None, None) => deliveries.push(no_event(entry.id, times)),
    }
}

fn no_event(id: String, times: u32) -> Delivery {
    let why = format!("the entry has neither a `{EVENT_FIELD}` nor a `{PACKED_FIELD}` field");
    Delivery::unreadable(id, why, times)
}

/// The events of an entry whose field `ce` (one CloudEvent) or `ces` (`packed`: a JSON
/// array of them) holds `value`, each a delivery with the entry's id (an element that is not
/// a CloudEvent is dead-lettered alone by the bridge). A `ces` that is not a JSON array is
/// delivered whole, for the bridge to dead-letter as undecodable with its payload.
fn entry_deliveries(
    id: String,
    value: Value,
    packed: bool,
    times: u32,
    deliveries: &mut Vec<Delivery>,
) {
    let bytes = match value {
        Value::BulkString(bytes) => bytes,
        Value::SimpleString(text) => text.into_bytes(),
        _ => {
            let why = "the entry's event field is not a string";
            return deliveries.push(Delivery::unreadable(id, why, times));
        }
    };
    if !packed {
        return deliveries.push(Delivery::new(id, bytes, times));
    }
    match serde_json::from_slice::<Vec<&RawValue>>(&bytes) {
        Ok(events) if !events.is_empty() => {
            for event in events {
                let payload = event.get().as_bytes().to_vec();
                deliveries.push(Delivery::new(id.clone(), payload, times));
            }
        }
        Ok(_) => deliveries.push(Delivery::unreadable(
            id,
            "the entry's `ces` is empty",
            times,
        )),
        Err(_) => deliveries.push(Delivery::new(id, bytes, times)),
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
                    Err("the entry has neither a `ce` nor a `ces` field".to_owned())
                ),
                ("2-0".to_owned(), Err("the entry has no fields".to_owned())),
            ]
        );
    }

    #[test]
    fn a_packed_entry_is_one_delivery_per_event_under_the_entry_id() {
        let entries = Value::Array(vec![
            entry("1-0", &["ces", r#"[{"a":1}, {"b":[2,"]"]}]"#]),
            entry("2-0", &["ce", r#"{"c":3}"#]),
            entry("3-0", &["ces", r#"{"not":"an array"}"#]),
            entry("4-0", &["ces", "[]"]),
            entry("5-0", &["ces", "[1,"]),
        ]);
        let reply = Value::Array(vec![Value::Array(vec![bulk("s"), entries])]);
        let ok = |id: &str, payload: &str| (id.to_owned(), Ok(payload.to_owned()));
        assert_eq!(
            read(reply),
            vec![
                ok("1-0", r#"{"a":1}"#),
                ok("1-0", r#"{"b":[2,"]"]}"#),
                ok("2-0", r#"{"c":3}"#),
                // Not an array: delivered whole, for the bridge to dead-letter as undecodable.
                ok("3-0", r#"{"not":"an array"}"#),
                (
                    "4-0".to_owned(),
                    Err("the entry's `ces` is empty".to_owned())
                ),
                ok("5-0", "[1,"),
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
