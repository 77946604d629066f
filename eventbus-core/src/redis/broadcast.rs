//! Receiving broadcasts: a RESP3 Pub/Sub subscription that reconnects and resubscribes by
//! itself.

use super::{BridgeError, Diagnostics, Inner};
use crate::wire::Envelope;
use crate::EventBus;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{PushInfo, PushKind, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::Instrument;

pub(crate) struct Subscriber {
    inner: Arc<Inner>,
    /// Kept alive: it owns the subscription and reconnects it.
    _connection: ConnectionManager,
    pushes: mpsc::UnboundedReceiver<PushInfo>,
}

impl Subscriber {
    pub(crate) async fn connect(
        inner: Arc<Inner>,
        channels: &[String],
    ) -> Result<Self, BridgeError> {
        let (tx, pushes) = mpsc::unbounded_channel();
        let config = ConnectionManagerConfig::new()
            .set_push_sender(tx)
            .set_automatic_resubscription()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_max_delay(Duration::from_secs(2));
        let mut connection = ConnectionManager::new_with_config(inner.client.clone(), config)
            .await
            .map_err(BridgeError::Redis)?;
        for channel in channels {
            connection
                .subscribe(channel)
                .await
                .map_err(BridgeError::Redis)?;
        }
        Ok(Subscriber {
            inner,
            _connection: connection,
            pushes,
        })
    }

    pub(crate) async fn run(mut self, bus: EventBus) {
        let mut stop = self.inner.stop.subscribe();
        loop {
            let push = tokio::select! {
                push = self.pushes.recv() => push,
                _ = stop.wait_for(Option::is_some) => return,
            };
            let Some(push) = push else { return };
            match push.kind {
                PushKind::Message => {
                    if let Some(Value::BulkString(payload)) = push.data.last() {
                        self.receive(&bus, &payload[..]).await;
                    }
                }
                PushKind::Disconnection => {
                    Diagnostics::bump(&self.inner.diagnostics.connection_errors);
                    tracing::warn!(service = %self.inner.service, "Pub/Sub connection lost; reconnecting and resubscribing (messages sent meanwhile are lost)");
                }
                _ => {}
            }
        }
    }

    async fn receive(&self, bus: &EventBus, payload: &[u8]) {
        let diagnostics = &self.inner.diagnostics;
        Diagnostics::bump(&diagnostics.received);
        let own = |envelope: &Envelope| envelope.instance() == Some(self.inner.instance.as_str());
        let incoming = match Envelope::decode_unless(payload, own) {
            Ok(Some(incoming)) => incoming,
            Ok(None) => {
                Diagnostics::bump(&diagnostics.skipped_own);
                return;
            }
            Err(error) => {
                diagnostics.decode_error(&error);
                tracing::warn!(%error, kind = error.label(), "broadcast message dropped");
                return;
            }
        };
        let report = {
            let (event, meta) = incoming.into_event();
            let span = crate::wire::receive_span(&meta);
            bus.publish_received(event, meta).instrument(span).await
        };
        Diagnostics::bump(&diagnostics.dispatched);
        if report.is_unhandled() {
            Diagnostics::bump(&diagnostics.unhandled);
            tracing::warn!(
                event = report.event_type().name(),
                "broadcast event taken by no local handler (at-most-once: not kept)"
            );
            return;
        }
        if let Err(error) = report.into_result() {
            tracing::warn!(%error, "broadcast event failed locally (at-most-once: not retried)");
        }
    }
}
