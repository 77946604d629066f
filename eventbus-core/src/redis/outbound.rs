//! Sending: the [`Outbound`] middleware queues routed events; one task writes them to Redis in
//! pipelined batches, so local dispatch never waits for the network.

use super::{Diagnostics, Inner, Mode};
use crate::handler::BoxFuture;
use crate::middleware::{Envelope, Middleware, Next};
use crate::report::{FailureKind, HandlerFailure};
use crate::PublishReport;
use redis::aio::ConnectionManager;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Most events written in one pipelined round trip.
const MAX_BATCH: usize = 512;
/// Attempts to flush durable events once shutdown has begun, before giving up on them.
const SHUTDOWN_ATTEMPTS: u32 = 10;

/// One event on its way to Redis.
pub(crate) struct Outgoing {
    mode: Mode,
    payload: String,
}

/// The middleware that sends routed events to Redis; from [`RedisBridge::outbound`](super::RedisBridge::outbound).
///
/// Add it **last**, so it sends the event as the handlers see it (after transforms, and not at
/// all when an earlier middleware filtered it). Events received from another process are not
/// sent back out. Sending never waits for remote handlers: the event is queued and local
/// dispatch goes on. A broadcast event that finds the queue full is dropped (at-most-once, and
/// counted); a durable one waits for room. An event that cannot be sent (its type is not
/// `#[event(distributed)]`, or serde fails) is a middleware failure in the publish report.
pub struct Outbound {
    inner: Arc<Inner>,
}

impl Outbound {
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        Outbound { inner }
    }
}

impl fmt::Debug for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbound")
            .field("service", &self.inner.service)
            .finish()
    }
}

impl Middleware for Outbound {
    fn name(&self) -> &str {
        "redis-outbound"
    }

    fn handle(&self, envelope: Envelope, next: Next) -> BoxFuture<'static, PublishReport> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let failure = send(&inner, &envelope).await.err();
            let mut report = next.run(envelope).await;
            if let Some(message) = failure {
                Diagnostics::bump(&inner.diagnostics.send_failures);
                report.record_middleware_failure(HandlerFailure::middleware_failed(
                    &Arc::from("redis-outbound"),
                    FailureKind::Error(message),
                ));
            }
            report
        })
    }
}

/// Queues the event for every route it matches.
async fn send(inner: &Inner, envelope: &Envelope) -> Result<(), String> {
    if envelope.origin().is_some() {
        return Ok(()); // received from another process: never echoed back
    }
    let event_type = envelope.event_type();
    let mut modes: Vec<&Mode> = inner
        .routes
        .iter()
        .filter(|r| event_type.level_of(r.scope.type_id()).is_some())
        .map(|r| &r.mode)
        .collect();
    modes.dedup();
    if modes.is_empty() {
        return Ok(());
    }
    if inner.stopping() {
        return Err("the Redis bridge is shut down; the event was handled locally only".into());
    }
    let payload = crate::wire::encode(
        &*envelope.event,
        &envelope.meta,
        &inner.service,
        &inner.instance,
    )
    .map_err(|e| e.to_string())?;
    for mode in modes {
        let outgoing = Outgoing {
            mode: mode.clone(),
            payload: payload.clone(),
        };
        match mode {
            Mode::Broadcast { .. } => {
                if inner.outbox.try_send(outgoing).is_err() {
                    Diagnostics::bump(&inner.diagnostics.send_failures);
                    tracing::warn!(
                        event = event_type.name(),
                        "broadcast dropped: the send queue is full"
                    );
                }
            }
            Mode::Durable { .. } => {
                if inner.outbox.send(outgoing).await.is_err() {
                    return Err(
                        "the Redis bridge is not running; the event was handled locally only"
                            .into(),
                    );
                }
            }
        }
    }
    Ok(())
}

/// Writes queued events to Redis in pipelined batches until shutdown, then flushes the rest.
pub(crate) async fn publish_loop(
    inner: Arc<Inner>,
    mut connection: ConnectionManager,
    mut outbox: mpsc::Receiver<Outgoing>,
) {
    let mut stop = inner.stop.subscribe();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let stopping = tokio::select! {
            item = outbox.recv() => match item {
                Some(item) => { batch.push(item); false }
                None => true,
            },
            _ = stop.wait_for(|stop| *stop) => true,
        };
        while batch.len() < MAX_BATCH || stopping {
            match outbox.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        flush(&inner, &mut connection, &mut batch, stopping).await;
        if stopping {
            outbox.close();
            while let Some(item) = outbox.recv().await {
                batch.push(item);
            }
            flush(&inner, &mut connection, &mut batch, true).await;
            return;
        }
    }
}

/// Writes a batch. A failed broadcast batch is dropped (at-most-once); durable events are
/// retried with back-off until they are written (or, once stopping, a bounded number of times).
async fn flush(
    inner: &Inner,
    connection: &mut ConnectionManager,
    batch: &mut Vec<Outgoing>,
    stopping: bool,
) {
    let diagnostics = &inner.diagnostics;
    let mut attempt = 0u32;
    while !batch.is_empty() {
        let mut pipe = redis::pipe();
        for item in batch.iter() {
            match &item.mode {
                Mode::Broadcast { channel } => {
                    pipe.cmd("PUBLISH").arg(channel).arg(&item.payload).ignore()
                }
                Mode::Durable { stream } => pipe
                    .cmd("XADD")
                    .arg(stream)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(inner.settings.stream_maxlen)
                    .arg("*")
                    .arg("ce")
                    .arg(&item.payload)
                    .ignore(),
            };
        }
        match pipe.query_async::<()>(connection).await {
            Ok(()) => {
                Diagnostics::add(&diagnostics.sent, batch.len() as u64);
                batch.clear();
            }
            Err(error) => {
                Diagnostics::bump(&diagnostics.connection_errors);
                let before = batch.len();
                batch.retain(|item| matches!(item.mode, Mode::Durable { .. }));
                let dropped = before - batch.len();
                Diagnostics::add(&diagnostics.send_failures, dropped as u64);
                tracing::warn!(%error, dropped_broadcasts = dropped, durable_pending = batch.len(), "sending to Redis failed; retrying durable events");
                attempt += 1;
                if stopping && attempt >= SHUTDOWN_ATTEMPTS && !batch.is_empty() {
                    Diagnostics::add(&diagnostics.send_failures, batch.len() as u64);
                    tracing::error!(
                        lost = batch.len(),
                        "durable events could not be written before shutdown"
                    );
                    batch.clear();
                }
                let backoff = Duration::from_millis(50 * 2u64.pow(attempt.min(5)));
                tokio::time::sleep(backoff.min(Duration::from_secs(2))).await;
            }
        }
    }
}
