//! Writing: each batch is one pipelined round trip of `PUBLISH` and `XADD` commands.

use super::{error, Settings};
use crate::bridge::{Message, Mode, Publisher, TransportError};
use crate::handler::BoxFuture;
use redis::aio::ConnectionManager;
use redis::{RedisResult, Value};

pub(crate) struct RedisPublisher {
    connection: ConnectionManager,
    /// `XADD`'s `MAXLEN ~` bound, written once.
    stream_maxlen: String,
}

impl RedisPublisher {
    pub(crate) fn new(connection: ConnectionManager, settings: &Settings) -> Self {
        RedisPublisher {
            connection,
            stream_maxlen: settings.stream_maxlen.to_string(),
        }
    }
}

/// `name` with room for `args` arguments of `bytes` bytes in all, so writing them does not
/// grow its buffers again and again (a payload is hundreds of bytes).
fn command(name: &str, args: usize, bytes: usize) -> redis::Cmd {
    let mut cmd = redis::Cmd::with_capacity(args + 1, name.len() + bytes);
    cmd.arg(name);
    cmd
}

impl Publisher for RedisPublisher {
    fn publish<'a>(
        &'a mut self,
        batch: &'a [Message],
    ) -> BoxFuture<'a, Result<Vec<Result<(), TransportError>>, TransportError>> {
        Box::pin(async move {
            let mut pipe = redis::Pipeline::with_capacity(batch.len());
            pipe.ignore_errors();
            for message in batch {
                let (topic, payload) = (message.topic(), message.payload());
                let bytes = topic.len() + payload.len();
                let cmd = match message.mode() {
                    Mode::Broadcast => {
                        let mut cmd = command("PUBLISH", 2, bytes);
                        cmd.arg(topic).arg(payload);
                        cmd
                    }
                    Mode::Durable => {
                        let fixed = "MAXLEN~*ce".len() + self.stream_maxlen.len();
                        let mut cmd = command("XADD", 7, bytes + fixed);
                        cmd.arg(topic)
                            .arg("MAXLEN")
                            .arg("~")
                            .arg(&self.stream_maxlen)
                            .arg("*")
                            .arg("ce")
                            .arg(payload);
                        cmd
                    }
                };
                pipe.add_command(cmd);
            }
            let replies: Vec<RedisResult<Value>> = pipe
                .query_async(&mut self.connection)
                .await
                .map_err(error)?;
            Ok(replies
                .into_iter()
                .map(|reply| reply.map(drop).map_err(error))
                .collect())
        })
    }
}
