//! Sending: the [`Outbound`] middleware queues routed events; one task writes them to Redis in
//! pipelined batches, so local dispatch never waits for the network.

use super::{Diagnostics, Inner, Mode};
use crate::handler::BoxFuture;
use crate::middleware::{Envelope, Middleware, Next};
use crate::report::{FailureKind, HandlerFailure};
use crate::PublishReport;
use redis::aio::ConnectionManager;
use redis::{RedisError, RedisResult, Value};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Most events written in one pipelined round trip.
const MAX_BATCH: usize = 512;
/// Writes of a durable event that the server rejects (an error reply, such as `OOM` or
/// `WRONGTYPE`) before it is given up on: a rejection rarely goes away by itself.
const MAX_REJECTIONS: u32 = 5;

/// One event on its way to Redis.
pub(crate) struct Outgoing {
    mode: Mode,
    payload: String,
    /// Times the server rejected it.
    rejections: u32,
}

/// An event the bridge could not write to Redis before its shutdown deadline: its CloudEvent
/// JSON and where it was going, so it can be stored or sent again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsentEvent {
    durable: bool,
    target: String,
    payload: String,
}

impl UnsentEvent {
    /// `true` for a durable (stream) event, `false` for a broadcast.
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// The stream or channel it was going to.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The CloudEvent, as JSON (for a stream, the value of the entry's `ce` field).
    pub fn payload(&self) -> &str {
        &self.payload
    }
}

impl From<Outgoing> for UnsentEvent {
    fn from(outgoing: Outgoing) -> Self {
        let (durable, target) = match outgoing.mode {
            Mode::Broadcast { channel } => (false, channel),
            Mode::Durable { stream } => (true, stream),
        };
        UnsentEvent {
            durable,
            target,
            payload: outgoing.payload,
        }
    }
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

    /// Whether this is the outbound side of the bridge `inner`.
    pub(crate) fn belongs_to(&self, inner: &Arc<Inner>) -> bool {
        Arc::ptr_eq(&self.inner, inner)
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
        Diagnostics::bump(&inner.diagnostics.send_failed_stopped);
        return Err("the Redis bridge is shut down; the event was handled locally only".into());
    }
    let encoded = match inner.settings.send_as.get(&event_type.type_id()) {
        Some(send_as) => {
            let part = envelope.event.part(0).expect("level 0 is the event itself");
            let old = (send_as.convert)(part);
            let (source, instance) = (&inner.service, &inner.instance);
            crate::wire::encode_as(&*old, send_as.to, &envelope.meta, source, instance)
        }
        None => crate::wire::encode(
            &*envelope.event,
            &envelope.meta,
            &inner.service,
            &inner.instance,
        ),
    };
    let payload = encoded.map_err(|e| {
        Diagnostics::bump(&inner.diagnostics.send_failed_encode);
        e.to_string()
    })?;
    for mode in modes {
        let outgoing = Outgoing {
            mode: mode.clone(),
            payload: payload.clone(),
            rejections: 0,
        };
        match mode {
            Mode::Broadcast { .. } => {
                if inner.outbox.try_send(outgoing).is_err() {
                    Diagnostics::bump(&inner.diagnostics.send_dropped_full);
                    tracing::warn!(
                        event = event_type.name(),
                        "broadcast dropped: the send queue is full"
                    );
                }
            }
            Mode::Durable { .. } => {
                if inner.outbox.send(outgoing).await.is_err() {
                    Diagnostics::bump(&inner.diagnostics.send_failed_stopped);
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

/// Writes queued events to Redis in pipelined batches until shutdown, then writes the rest
/// until the deadline, and returns what it could not write.
pub(crate) async fn publish_loop(
    inner: Arc<Inner>,
    mut connection: ConnectionManager,
    mut outbox: mpsc::Receiver<Outgoing>,
) -> Vec<Outgoing> {
    let mut stop = inner.stop.subscribe();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let stopping = tokio::select! {
            item = outbox.recv() => match item {
                Some(item) => { batch.push(item); false }
                None => true,
            },
            _ = stop.wait_for(Option::is_some) => true,
        };
        while batch.len() < MAX_BATCH || stopping {
            match outbox.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let written = flush(&inner, &mut connection, &mut batch, &mut stop).await;
        if stopping || !written {
            // Senders get an error from now on; whatever is queued is written or handed back.
            outbox.close();
            while let Some(item) = outbox.recv().await {
                batch.push(item);
            }
            if written {
                flush(&inner, &mut connection, &mut batch, &mut stop).await;
            }
            if !batch.is_empty() {
                Diagnostics::add(&inner.diagnostics.unsent_at_shutdown, batch.len() as u64);
                tracing::error!(
                    unsent = batch.len(),
                    "events not written to Redis by the shutdown deadline: handed back by shutdown()"
                );
            }
            return batch;
        }
    }
}

/// Writes a batch, retrying durable events with back-off while the connection fails. A
/// broadcast in a failed round trip is dropped (at-most-once). Returns `false` when the
/// shutdown deadline passed first: what is left in `batch` was not written.
async fn flush(
    inner: &Inner,
    connection: &mut ConnectionManager,
    batch: &mut Vec<Outgoing>,
    stop: &mut watch::Receiver<Option<Instant>>,
) -> bool {
    let diagnostics = &inner.diagnostics;
    let mut backoff = Inner::reconnect_backoff();
    while !batch.is_empty() {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for item in batch.iter() {
            match &item.mode {
                Mode::Broadcast { channel } => pipe.cmd("PUBLISH").arg(channel).arg(&item.payload),
                Mode::Durable { stream } => pipe
                    .cmd("XADD")
                    .arg(stream)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(inner.settings.stream_maxlen)
                    .arg("*")
                    .arg("ce")
                    .arg(&item.payload),
            };
        }
        let written = tokio::select! {
            biased;
            written = pipe.query_async::<Vec<RedisResult<Value>>>(connection) => written,
            () = deadline_passed(stop) => return false,
        };
        match written {
            Ok(replies) => settle_replies(inner, batch, replies),
            Err(error) => {
                Diagnostics::bump(&diagnostics.connection_errors);
                let before = batch.len();
                batch.retain(|item| matches!(item.mode, Mode::Durable { .. }));
                let dropped = before - batch.len();
                Diagnostics::add(&diagnostics.send_failed_connection, dropped as u64);
                Diagnostics::add(&diagnostics.send_retries, batch.len() as u64);
                tracing::warn!(%error, dropped_broadcasts = dropped, durable_pending = batch.len(), "sending to Redis failed; retrying durable events");
            }
        }
        if batch.is_empty() {
            break;
        }
        let wait = backoff.next().unwrap_or(Duration::from_secs(2));
        tokio::select! {
            biased;
            () = tokio::time::sleep(wait) => {}
            () = deadline_passed(stop) => return false,
        }
    }
    true
}

/// Counts the replies of one round trip and keeps in `batch` only the durable events the
/// server rejected and that may be tried again.
fn settle_replies(inner: &Inner, batch: &mut Vec<Outgoing>, replies: Vec<RedisResult<Value>>) {
    let diagnostics = &inner.diagnostics;
    let mut replies = replies.into_iter();
    batch.retain_mut(|item| {
        let rejection: Option<RedisError> = match replies.next() {
            Some(Ok(_)) => None,
            Some(Err(error)) => Some(error),
            None => Some(RedisError::from((
                redis::ErrorKind::Client,
                "no reply for a pipelined command",
            ))),
        };
        let Some(error) = rejection else {
            Diagnostics::bump(&diagnostics.sent);
            return false;
        };
        item.rejections += 1;
        let durable = matches!(item.mode, Mode::Durable { .. });
        if durable && item.rejections < MAX_REJECTIONS {
            Diagnostics::bump(&diagnostics.send_retries);
            tracing::warn!(%error, rejections = item.rejections, "Redis rejected a durable event; retrying");
            return true;
        }
        Diagnostics::bump(&diagnostics.send_failed_reply);
        tracing::error!(%error, durable, payload = %item.payload, "Redis rejected the event; given up");
        false
    });
}

/// Resolves once shutdown has begun and its deadline has passed; never before.
async fn deadline_passed(stop: &mut watch::Receiver<Option<Instant>>) {
    let deadline = match stop.wait_for(Option::is_some).await {
        Ok(deadline) => *deadline,
        // The bridge is gone: nobody waits for this writer any more.
        Err(_) => Some(Instant::now()),
    };
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline).await;
    }
}
