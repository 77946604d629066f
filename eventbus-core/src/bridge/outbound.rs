//! Sending: the [`Outbound`] middleware queues routed events; one task writes them through the
//! transport in batches, so local dispatch never waits for the network.

use super::{Diagnostics, Inner, Message, Mode, Publisher};
use crate::handler::BoxFuture;
use crate::middleware::{Envelope, Middleware, Next};
use crate::report::{FailureKind, HandlerFailure};
use crate::PublishReport;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Most events written in one batch.
const MAX_BATCH: usize = 512;
/// Writes of a durable event that the broker refuses (an error reply, such as `OOM`) before it
/// is given up on: a refusal rarely goes away by itself.
const MAX_REJECTIONS: u32 = 5;

/// An event the bridge could not write to the broker before its shutdown deadline: its
/// CloudEvent JSON and where it was going, so it can be stored or sent again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsentEvent {
    durable: bool,
    target: String,
    payload: String,
}

impl UnsentEvent {
    /// `true` for a durable event, `false` for a broadcast.
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// The topic it was going to.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The CloudEvent, as JSON.
    pub fn payload(&self) -> &str {
        &self.payload
    }
}

impl From<Message> for UnsentEvent {
    fn from(message: Message) -> Self {
        UnsentEvent {
            durable: message.mode == Mode::Durable,
            target: message.topic.to_string(),
            payload: message.payload.to_string(),
        }
    }
}

/// The middleware that sends routed events to the broker; from
/// [`Bridge::outbound`](super::Bridge::outbound).
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
            .field("transport", &self.inner.transport.name())
            .field("service", &self.inner.service)
            .finish()
    }
}

impl Middleware for Outbound {
    fn name(&self) -> &str {
        &self.inner.outbound_name
    }

    fn handle(&self, envelope: Envelope, next: Next) -> BoxFuture<'static, PublishReport> {
        if envelope.origin().is_some() {
            // Received from another process: never sent back out, so no future of our own.
            return next.run(envelope);
        }
        let inner = self.inner.clone();
        Box::pin(async move {
            let failure = send(&inner, &envelope).await.err();
            let mut report = next.run(envelope).await;
            if let Some(message) = failure {
                report.record_middleware_failure(HandlerFailure::middleware_failed(
                    &inner.outbound_name,
                    FailureKind::Error(message),
                ));
            }
            report
        })
    }
}

/// Queues the event for every route it matches (once per topic). (A received event never
/// gets here: `handle` passes it on.)
async fn send(inner: &Inner, envelope: &Envelope) -> Result<(), String> {
    let event_type = envelope.event_type();
    let mut routes: Vec<&super::Route> = Vec::new();
    for route in &inner.routes {
        let matches = event_type.level_of(route.scope.type_id()).is_some();
        if matches && !routes.iter().any(|r| r.topic == route.topic) {
            routes.push(route);
        }
    }
    if routes.is_empty() {
        return Ok(());
    }
    if inner.stopping() {
        Diagnostics::bump(&inner.diagnostics.send_failed_stopped);
        return Err("the bridge is shut down; the event was handled locally only".into());
    }
    let (source, instance) = (&inner.service, &inner.instance);
    let (encoded, sent_type) = match inner.settings.send_as.get(&event_type.type_id()) {
        Some(send_as) => {
            let part = envelope.event.part(0).expect("level 0 is the event itself");
            let old = (send_as.convert)(part);
            let encoded =
                crate::wire::encode_as(&*old, send_as.to, &envelope.meta, source, instance);
            (encoded, send_as.to)
        }
        None => (
            crate::wire::encode(&*envelope.event, &envelope.meta, source, instance),
            event_type,
        ),
    };
    let payload: Arc<str> = encoded
        .map_err(|e| {
            Diagnostics::bump(&inner.diagnostics.send_failed_encode);
            e.to_string()
        })?
        .into();
    for route in routes {
        let message = Message {
            mode: route.mode,
            topic: route.topic.clone(),
            event_type: sent_type,
            payload: payload.clone(),
            rejections: 0,
        };
        match route.mode {
            Mode::Broadcast => {
                if inner.outbox.try_send(message).is_err() {
                    Diagnostics::bump(&inner.diagnostics.send_dropped_full);
                    tracing::warn!(
                        event = event_type.name(),
                        "broadcast dropped: the send queue is full"
                    );
                }
            }
            Mode::Durable => {
                if inner.outbox.send(message).await.is_err() {
                    Diagnostics::bump(&inner.diagnostics.send_failed_stopped);
                    return Err(
                        "the bridge is not running; the event was handled locally only".into(),
                    );
                }
            }
        }
    }
    Ok(())
}

/// Writes queued events in batches until shutdown, then writes the rest until the deadline,
/// and returns what it could not write.
pub(crate) async fn publish_loop(
    inner: Arc<Inner>,
    mut publisher: Box<dyn Publisher>,
    mut outbox: mpsc::Receiver<Message>,
) -> Vec<Message> {
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
        let written = flush(&inner, &mut *publisher, &mut batch, &mut stop).await;
        if stopping || !written {
            // Senders get an error from now on; whatever is queued is written or handed back.
            outbox.close();
            while let Some(item) = outbox.recv().await {
                batch.push(item);
            }
            if written {
                flush(&inner, &mut *publisher, &mut batch, &mut stop).await;
            }
            if !batch.is_empty() {
                Diagnostics::add(&inner.diagnostics.unsent_at_shutdown, batch.len() as u64);
                tracing::error!(
                    unsent = batch.len(),
                    transport = inner.transport.name(),
                    "events not written by the shutdown deadline: handed back by shutdown()"
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
    publisher: &mut dyn Publisher,
    batch: &mut Vec<Message>,
    stop: &mut watch::Receiver<Option<Instant>>,
) -> bool {
    let diagnostics = &inner.diagnostics;
    let mut backoff = Inner::reconnect_backoff();
    while !batch.is_empty() {
        let written = tokio::select! {
            biased;
            written = publisher.publish(batch) => written,
            () = deadline_passed(stop) => return false,
        };
        match written {
            Ok(replies) => settle_replies(inner, batch, replies),
            Err(error) => {
                Diagnostics::bump(&diagnostics.connection_errors);
                let before = batch.len();
                batch.retain(|item| item.mode == Mode::Durable);
                let dropped = before - batch.len();
                Diagnostics::add(&diagnostics.send_failed_connection, dropped as u64);
                Diagnostics::add(&diagnostics.send_retries, batch.len() as u64);
                tracing::warn!(%error, dropped_broadcasts = dropped, durable_pending = batch.len(), "sending failed; retrying durable events");
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

/// Counts the replies of one batch and keeps in `batch` only the durable events the broker
/// refused and that may be tried again.
fn settle_replies(
    inner: &Inner,
    batch: &mut Vec<Message>,
    replies: Vec<Result<(), super::TransportError>>,
) {
    let diagnostics = &inner.diagnostics;
    let mut replies = replies.into_iter();
    batch.retain_mut(|item| {
        let error = match replies.next() {
            Some(Ok(())) => {
                Diagnostics::bump(&diagnostics.sent);
                return false;
            }
            Some(Err(error)) if error.is_unroutable() => {
                // Sending it again would reach nobody either, and hold up the events behind it.
                Diagnostics::bump(&diagnostics.send_unroutable);
                tracing::error!(%error, topic = %item.topic, payload = %item.payload, "no subscriber could receive the durable event: it is lost");
                return false;
            }
            Some(Err(error)) => error.to_string(),
            None => "the transport gave no reply for it".to_owned(),
        };
        item.rejections += 1;
        let durable = item.mode == Mode::Durable;
        if durable && item.rejections < MAX_REJECTIONS {
            Diagnostics::bump(&diagnostics.send_retries);
            tracing::warn!(%error, rejections = item.rejections, "the broker refused a durable event; retrying");
            return true;
        }
        Diagnostics::bump(&diagnostics.send_failed_reply);
        tracing::error!(%error, durable, payload = %item.payload, "the broker refused the event; given up");
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
