//! Receiving: one task per subscription decodes what the transport delivers, publishes it on
//! the local bus, and settles it: acknowledged, delivered again, or dead-lettered.

use super::{Delivery, Diagnostics, Inner, Mode, Outcome, Settled, Subscriber, Unhandled};
use crate::wire::Envelope;
use crate::EventBus;
use rustc_hash::FxHashSet;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// Receives until shutdown. A durable subscription finishes the batch in hand (so what it
/// handled is acknowledged); a broadcast one stops waiting at once.
pub(crate) async fn consume(
    inner: Arc<Inner>,
    mut subscriber: Box<dyn Subscriber>,
    mode: Mode,
    bus: EventBus,
) {
    let mut stop = inner.stop.subscribe();
    let mut seen = Dedup::new(match mode {
        Mode::Durable => inner.settings.dedup_window,
        Mode::Broadcast => 0,
    });
    let mut origin = LastOrigin::default();
    let mut backoff = None;
    while !inner.stopping() {
        let received = match mode {
            Mode::Durable => subscriber.receive().await,
            Mode::Broadcast => tokio::select! {
                received = subscriber.receive() => received,
                _ = stop.wait_for(Option::is_some) => break,
            },
        };
        let deliveries = match received {
            Ok(deliveries) => deliveries,
            Err(error) => {
                connection_error(&inner, &error, &mut backoff).await;
                continue;
            }
        };
        backoff = None;
        let mut settled = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            let outcome = handle(&inner, &bus, mode, &mut seen, &mut origin, &delivery).await;
            settled.push(Settled { delivery, outcome });
        }
        if let Err(error) = subscriber.settle(settled).await {
            // Unsettled durable events are delivered again (and de-duplicated).
            connection_error(&inner, &error, &mut backoff).await;
        }
    }
    subscriber.close().await;
}

/// Counts and logs a failed round trip, then waits before the next try (`backoff` holds the
/// waits since the last success).
async fn connection_error(
    inner: &Inner,
    error: &super::TransportError,
    backoff: &mut Option<backon::ExponentialBackoff>,
) {
    Diagnostics::bump(&inner.diagnostics.connection_errors);
    tracing::warn!(service = %inner.service, %error, "bridge consumer: broker error; retrying");
    let wait = backoff
        .get_or_insert_with(Inner::reconnect_backoff)
        .next()
        .unwrap_or(Duration::from_secs(2));
    tokio::time::sleep(wait).await;
}

/// Handles one delivery and says what becomes of it. A broadcast is never delivered again, so
/// its outcome only matters to the counters.
async fn handle(
    inner: &Inner,
    bus: &EventBus,
    mode: Mode,
    seen: &mut Dedup,
    origin: &mut LastOrigin,
    delivery: &Delivery,
) -> Outcome {
    let diagnostics = &inner.diagnostics;
    let durable = mode == Mode::Durable;
    Diagnostics::bump(&diagnostics.received);
    let payload = match delivery.payload() {
        Ok(payload) => payload,
        Err(why) => {
            Diagnostics::bump(&diagnostics.malformed);
            tracing::warn!(id = delivery.id(), why, "unreadable message");
            return dead_letter(inner, durable, why.to_owned());
        }
    };
    // A durable event its own service sent was handled by that service's bus; a broadcast
    // only by the process that sent it.
    let own = |envelope: &Envelope| match mode {
        Mode::Durable => envelope.source() == &*inner.service,
        Mode::Broadcast => envelope.instance() == Some(&*inner.instance),
    };
    let incoming = match Envelope::decode_unless(payload, own) {
        Ok(Some(incoming)) => incoming,
        Ok(None) => {
            Diagnostics::bump(&diagnostics.skipped_own);
            return Outcome::Ack;
        }
        Err(error) => {
            diagnostics.decode_error(&error);
            tracing::warn!(id = delivery.id(), %error, kind = error.label(), "undecodable message");
            return dead_letter(inner, durable, error.to_string());
        }
    };
    let key = seen.key(&incoming.source, &incoming.remote_id);
    if key.is_some_and(|key| seen.contains(key)) {
        Diagnostics::bump(&diagnostics.duplicates);
        return Outcome::Ack;
    }
    let report = {
        let origin = origin.of(&incoming.source);
        let (event, meta) = incoming.into_event(Some(origin));
        let span = crate::wire::receive_span(&meta);
        bus.publish_received(event, meta).instrument(span).await
    };
    Diagnostics::bump(&diagnostics.dispatched);
    let deliveries = delivery.deliveries();
    let max_deliveries = inner.settings.max_deliveries;
    if report.is_unhandled() {
        Diagnostics::bump(&diagnostics.unhandled);
        let name = report.event_type().name();
        if !durable {
            tracing::warn!(
                event = name,
                "broadcast event taken by no local handler (at-most-once: not kept)"
            );
            return Outcome::Ack;
        }
        let reason = format!("no local handler takes `{name}`");
        return match inner.settings.unhandled {
            Unhandled::Acknowledge => Outcome::Ack,
            Unhandled::DeadLetter => dead_letter(inner, durable, reason),
            Unhandled::Retry if deliveries >= max_deliveries => dead_letter(
                inner,
                durable,
                format!("{reason} after {deliveries} deliveries"),
            ),
            Unhandled::Retry => {
                tracing::warn!(
                    id = delivery.id(),
                    event = name,
                    deliveries,
                    "event taken by no handler; it will be delivered again"
                );
                Outcome::Retry
            }
        };
    }
    match report.into_result() {
        Ok(_) => {
            if let Some(key) = key {
                seen.insert(key);
            }
            Outcome::Ack
        }
        Err(error) if !durable => {
            tracing::warn!(%error, "broadcast event failed locally (at-most-once: not retried)");
            Outcome::Ack
        }
        Err(error) => {
            Diagnostics::bump(&diagnostics.handler_failures);
            if deliveries >= max_deliveries {
                let reason = format!("failed {deliveries} deliveries; last: {error}");
                dead_letter(inner, durable, reason)
            } else {
                tracing::warn!(id = delivery.id(), deliveries, %error, "event failed; it will be delivered again");
                Outcome::Retry
            }
        }
    }
}

/// A durable event that will never succeed is dead-lettered; a broadcast is dropped.
fn dead_letter(inner: &Inner, durable: bool, reason: String) -> Outcome {
    if !durable {
        tracing::warn!(reason, "broadcast message dropped");
        return Outcome::Ack;
    }
    Diagnostics::bump(&inner.diagnostics.dead_lettered);
    tracing::warn!(reason, "event dead-lettered");
    Outcome::DeadLetter(reason)
}

/// The sender of the last event received, shared by the metadata of every event it sends in a
/// row (one allocation per change of sender, not per event).
#[derive(Default)]
struct LastOrigin(Option<Arc<str>>);

impl LastOrigin {
    fn of(&mut self, source: &str) -> Arc<str> {
        match &self.0 {
            Some(last) if **last == *source => last.clone(),
            _ => self.0.insert(source.into()).clone(),
        }
    }
}

/// The last `capacity` events seen, oldest forgotten first. An event is kept as a 128-bit
/// keyed hash of its source and id, not as the text: no allocation per event, and a small,
/// cache-friendly set. Two different events share a key with a probability of about
/// `capacity² / 2¹²⁹` (10⁻³¹ for the default window), and since the keys are secret and
/// random per consumer, a sender cannot craft a collision to have an event dropped.
struct Dedup {
    capacity: usize,
    /// Two independently keyed SipHash states: the two halves of a key.
    hashers: [RandomState; 2],
    order: VecDeque<u128>,
    keys: FxHashSet<u128>,
}

impl Dedup {
    fn new(capacity: usize) -> Self {
        Dedup {
            capacity,
            hashers: [RandomState::new(), RandomState::new()],
            order: VecDeque::new(),
            keys: FxHashSet::default(),
        }
    }

    /// The key of an event from `source` with id `id`; `None` when the window is off (a
    /// broadcast, or `dedup_window(0)`), so nothing is computed for it.
    fn key(&self, source: &str, id: &str) -> Option<u128> {
        (self.capacity > 0).then(|| {
            let [high, low] = self.hashers.each_ref().map(|state| {
                let mut hasher = state.build_hasher();
                // Hashing a `str` ends it with a marker byte, so ("ab", "c") and ("a", "bc")
                // differ.
                source.hash(&mut hasher);
                id.hash(&mut hasher);
                hasher.finish()
            });
            (u128::from(high) << 64) | u128::from(low)
        })
    }

    fn contains(&self, key: u128) -> bool {
        self.keys.contains(&key)
    }

    fn insert(&mut self, key: u128) {
        if self.capacity == 0 || !self.keys.insert(key) {
            return;
        }
        self.order.push_back(key);
        if self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.keys.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Dedup;

    #[test]
    fn dedup_forgets_the_oldest_past_capacity() {
        let mut dedup = Dedup::new(2);
        let key = |id| dedup.key("svc", id).unwrap();
        let (a, b, c) = (key("a"), key("b"), key("c"));
        dedup.insert(a);
        dedup.insert(b);
        dedup.insert(a);
        assert!(dedup.contains(a) && dedup.contains(b));
        dedup.insert(c);
        assert!(!dedup.contains(a));
        assert!(dedup.contains(b) && dedup.contains(c));
    }

    #[test]
    fn dedup_keys_tell_source_and_id_apart() {
        let dedup = Dedup::new(1);
        let key = |source, id| dedup.key(source, id).unwrap();
        assert_eq!(key("svc", "1"), key("svc", "1"));
        assert_ne!(key("svc", "1"), key("svc", "2"));
        assert_ne!(key("ab", "c"), key("a", "bc"));
        assert_ne!(key("svc", "1"), key("other", "1"));
        assert_eq!(Dedup::new(0).key("svc", "1"), None);
    }
}
