//! Receiving broadcasts: a RESP3 Pub/Sub subscription that reconnects and resubscribes by
//! itself.

use super::error;
use crate::bridge::{Delivery, Settled, Subscriber, TransportError};
use crate::handler::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, PushInfo, PushKind, Value};
use std::time::Duration;
use tokio::sync::mpsc;

/// Most messages handed to the bridge at once.
const MAX_BATCH: usize = 256;

pub(crate) struct PubSubSubscriber {
    /// Kept alive: it owns the subscription and reconnects it.
    _connection: ConnectionManager,
    pushes: mpsc::UnboundedReceiver<PushInfo>,
    /// A disconnection seen after messages of the same batch: reported on the next call.
    disconnected: bool,
}

impl PubSubSubscriber {
    pub(crate) async fn connect(client: &Client, channel: &str) -> Result<Self, TransportError> {
        let (tx, pushes) = mpsc::unbounded_channel();
        let config = ConnectionManagerConfig::new()
            .set_push_sender(tx)
            .set_automatic_resubscription()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_max_delay(Duration::from_secs(2));
        let mut connection = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(error)?;
        connection.subscribe(channel).await.map_err(error)?;
        Ok(PubSubSubscriber {
            _connection: connection,
            pushes,
            disconnected: false,
        })
    }
}

impl Subscriber for PubSubSubscriber {
    fn receive(&mut self) -> BoxFuture<'_, Result<Vec<Delivery>, TransportError>> {
        Box::pin(async move {
            if std::mem::take(&mut self.disconnected) {
                return Err(lost());
            }
            let Some(first) = self.pushes.recv().await else {
                return Err(error("the Pub/Sub connection is gone"));
            };
            let mut deliveries = Vec::new();
            let mut push = Some(first);
            while let Some(next) = push {
                match next.kind {
                    PushKind::Message => {
                        if let Some(Value::BulkString(payload)) = next.data.into_iter().last() {
                            deliveries.push(Delivery::new("", payload, 1));
                        }
                    }
                    PushKind::Disconnection if deliveries.is_empty() => return Err(lost()),
                    PushKind::Disconnection => {
                        self.disconnected = true;
                        return Ok(deliveries);
                    }
                    _ => {}
                }
                if deliveries.len() >= MAX_BATCH {
                    break;
                }
                push = self.pushes.try_recv().ok();
            }
            Ok(deliveries)
        })
    }

    fn settle(&mut self, _settled: Vec<Settled>) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async { Ok(()) })
    }
}

fn lost() -> TransportError {
    error("Pub/Sub connection lost; reconnecting and resubscribing (messages sent meanwhile are lost)")
}
