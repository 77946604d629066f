//! Writing: each batch is one pipelined round trip of `PUBLISH` and `XADD` commands.

use super::{error, Settings};
use crate::bridge::{Message, Mode, Publisher, TransportError};
use crate::handler::BoxFuture;
use redis::aio::ConnectionManager;
use redis::{RedisResult, Value};

pub(crate) struct RedisPublisher {
    connection: ConnectionManager,
    settings: Settings,
}

impl RedisPublisher {
    pub(crate) fn new(connection: ConnectionManager, settings: Settings) -> Self {
        RedisPublisher {
            connection,
            settings,
        }
    }
}

impl Publisher for RedisPublisher {
    fn publish<'a>(
        &'a mut self,
        batch: &'a [Message],
    ) -> BoxFuture<'a, Result<Vec<Result<(), TransportError>>, TransportError>> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for message in batch {
                match message.mode() {
                    Mode::Broadcast => pipe
                        .cmd("PUBLISH")
                        .arg(message.topic())
                        .arg(message.payload()),
                    Mode::Durable => pipe
                        .cmd("XADD")
                        .arg(message.topic())
                        .arg("MAXLEN")
                        .arg("~")
                        .arg(self.settings.stream_maxlen)
                        .arg("*")
                        .arg("ce")
                        .arg(message.payload()),
                };
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
