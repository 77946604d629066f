//! Writing: each batch is one pipelined round trip of `PUBLISH` and `XADD` commands. With
//! [`events_per_entry`](crate::bridge::BridgeBuilder::events_per_entry) above 1, consecutive
//! durable events for one stream share an entry (see [`PACKED_FIELD`]).

use super::{error, Settings};
use crate::bridge::{Message, Mode, Publisher, TransportError};
use crate::handler::BoxFuture;
use redis::aio::ConnectionManager;
use redis::{RedisResult, RedisWrite, ToRedisArgs, Value};
use std::io::Write;

/// The field of an entry holding one CloudEvent (structured content mode, JSON).
pub(crate) const EVENT_FIELD: &str = "ce";
/// The field of an entry holding several, as a JSON array: the CloudEvents JSON batch
/// format (`application/cloudevents-batch+json`).
pub(crate) const PACKED_FIELD: &str = "ces";
/// The most payload bytes packed into one entry (an event larger than this goes alone): small
/// events gain most from sharing an entry, and a consumer's read of a full `COUNT` of entries
/// stays bounded (256 entries, 16 MiB).
const MAX_PACKED_BYTES: usize = 64 << 10;

pub(crate) struct RedisPublisher {
    connection: ConnectionManager,
    /// `XADD`'s `MAXLEN ~` bound, written once.
    stream_maxlen: String,
    /// Most durable events in one entry (1: one each).
    events_per_entry: usize,
}

impl RedisPublisher {
    pub(crate) fn new(connection: ConnectionManager, settings: &Settings) -> Self {
        RedisPublisher {
            connection,
            stream_maxlen: settings.stream_maxlen.to_string(),
            events_per_entry: settings.events_per_entry,
        }
    }

    fn xadd(&self, topic: &str, field: &str, value: impl ToRedisArgs, bytes: usize) -> redis::Cmd {
        let fixed = "MAXLEN~*".len() + field.len() + self.stream_maxlen.len();
        let mut cmd = command("XADD", 7, topic.len() + bytes + fixed);
        cmd.arg(topic)
            .arg("MAXLEN")
            .arg("~")
            .arg(&self.stream_maxlen)
            .arg("*")
            .arg(field)
            .arg(value);
        cmd
    }
}

/// The batch cut into the messages each command writes, in order: one each, except runs of
/// durable events for one stream, packed up to `events_per_entry` and the byte bound.
fn entries(batch: &[Message], events_per_entry: usize) -> Vec<&[Message]> {
    let mut entries = Vec::with_capacity(batch.len());
    let mut rest = batch;
    while let Some(first) = rest.first() {
        let mut len = 1;
        let mut bytes = first.payload().len();
        if first.mode() == Mode::Durable {
            while let Some(next) = rest.get(len) {
                let fits = bytes + next.payload().len() <= MAX_PACKED_BYTES;
                let same = next.mode() == Mode::Durable && next.topic() == first.topic();
                if len == events_per_entry || !fits || !same {
                    break;
                }
                bytes += next.payload().len();
                len += 1;
            }
        }
        let (entry, after) = rest.split_at(len);
        entries.push(entry);
        rest = after;
    }
    entries
}

/// `name` with room for `args` arguments of `bytes` bytes in all, so writing them does not
/// grow its buffers again and again (a payload is hundreds of bytes).
fn command(name: &str, args: usize, bytes: usize) -> redis::Cmd {
    let mut cmd = redis::Cmd::with_capacity(args + 1, name.len() + bytes);
    cmd.arg(name);
    cmd
}

/// Several events' payloads as one argument, a JSON array written straight into the command.
struct Packed<'a>(&'a [Message]);

impl ToRedisArgs for Packed<'_> {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + RedisWrite,
    {
        let mut arg = out.writer_for_next_arg();
        let mut separator = b"[";
        for message in self.0 {
            // Writing to the command's buffer cannot fail.
            let _ = arg.write_all(separator);
            let _ = arg.write_all(message.payload().as_bytes());
            separator = b",";
        }
        let _ = arg.write_all(b"]");
    }
}

impl Publisher for RedisPublisher {
    fn publish<'a>(
        &'a mut self,
        batch: &'a [Message],
    ) -> BoxFuture<'a, Result<Vec<Result<(), TransportError>>, TransportError>> {
        Box::pin(async move {
            let entries = entries(batch, self.events_per_entry);
            let mut pipe = redis::Pipeline::with_capacity(entries.len());
            pipe.ignore_errors();
            for entry in &entries {
                let [message] = entry else {
                    let bytes = entry.iter().map(|m| m.payload().len() + 1).sum::<usize>() + 1;
                    let topic = entry[0].topic();
                    pipe.add_command(self.xadd(topic, PACKED_FIELD, Packed(entry), bytes));
                    continue;
                };
                let (topic, payload) = (message.topic(), message.payload());
                let cmd = match message.mode() {
                    Mode::Broadcast => {
                        let mut cmd = command("PUBLISH", 2, topic.len() + payload.len());
                        cmd.arg(topic).arg(payload);
                        cmd
                    }
                    Mode::Durable => self.xadd(topic, EVENT_FIELD, payload, payload.len()),
                };
                pipe.add_command(cmd);
            }
            let replies: Vec<RedisResult<Value>> = pipe
                .query_async(&mut self.connection)
                .await
                .map_err(error)?;
            // One result per message: a packed entry's reply stands for each of its events.
            let mut results = Vec::with_capacity(batch.len());
            for (entry, reply) in entries.iter().zip(replies) {
                match reply {
                    Ok(_) => results.extend(entry.iter().map(|_| Ok(()))),
                    Err(failure) => {
                        let text = failure.to_string();
                        results.push(Err(error(failure)));
                        results.extend(entry[1..].iter().map(|_| Err(error(text.clone()))));
                    }
                }
            }
            Ok(results)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{entries, MAX_PACKED_BYTES};
    use crate::bridge::{Message, Mode};
    use crate::Event;

    #[derive(Event)]
    struct Placed;

    fn message(mode: Mode, topic: &str, bytes: usize) -> Message {
        Message {
            mode,
            topic: topic.into(),
            event_type: Placed::TYPE,
            payload: "x".repeat(bytes).into(),
            rejections: 0,
        }
    }

    /// The lengths of the entries `batch` is written as.
    fn shape(batch: &[Message], events_per_entry: usize) -> Vec<usize> {
        entries(batch, events_per_entry)
            .iter()
            .map(|e| e.len())
            .collect()
    }

    #[test]
    fn runs_of_durable_events_for_one_stream_are_packed_in_order() {
        use Mode::{Broadcast, Durable};
        let batch = [
            message(Durable, "a", 10),
            message(Durable, "a", 10),
            message(Durable, "a", 10),
            message(Broadcast, "a", 10),
            message(Broadcast, "a", 10),
            message(Durable, "a", 10),
            message(Durable, "b", 10),
            message(Durable, "b", 10),
        ];
        assert_eq!(shape(&batch, 1), [1; 8]);
        assert_eq!(shape(&batch, 2), [2, 1, 1, 1, 1, 2]);
        assert_eq!(shape(&batch, 64), [3, 1, 1, 1, 2]);
        let big = [
            message(Durable, "a", MAX_PACKED_BYTES / 2),
            message(Durable, "a", MAX_PACKED_BYTES / 2),
            message(Durable, "a", 1),
        ];
        assert_eq!(shape(&big, 64), [2, 1]);
        assert!(shape(&[], 64).is_empty());
    }
}
