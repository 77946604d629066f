//! Counters of what a bridge sent, received, skipped and refused ([`DiagnosticsSnapshot`]).

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Live counters of one bridge.
        #[derive(Debug, Default)]
        pub struct Diagnostics {
            $($(#[$doc])* pub(crate) $name: AtomicU64,)*
        }

        /// A copy of the counters at one moment. More counters may come: read them by name,
        /// or through [`counters`](Self::counters).
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct DiagnosticsSnapshot {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl Diagnostics {
            pub(crate) fn snapshot(&self) -> DiagnosticsSnapshot {
                DiagnosticsSnapshot {
                    $($name: self.$name.load(Ordering::Relaxed),)*
                }
            }
        }

        impl DiagnosticsSnapshot {
            /// Every counter by name, in declaration order: for exporters and dashboards.
            pub fn counters(&self) -> impl Iterator<Item = (&'static str, u64)> {
                [$((stringify!($name), self.$name),)*].into_iter()
            }
        }
    };
}

counters! {
    /// Events written to the broker.
    sent,
    /// Durable events written again after a failed round trip or a rejected write.
    send_retries,
    /// Events that could not be encoded: not `#[event(distributed)]`, or serde failed.
    send_failed_encode,
    /// Broadcasts lost with a failed round trip (at-most-once: not retried).
    send_failed_connection,
    /// Events the server rejected (an error reply): broadcasts at once, durable events after
    /// several tries.
    send_failed_reply,
    /// Durable events the broker could store for nobody, since no service had subscribed
    /// to their topic yet (RabbitMQ: no queue bound); given up at once, logged with their
    /// payload.
    send_unroutable,
    /// Broadcasts dropped because the send queue was full.
    send_dropped_full,
    /// Events refused because the bridge was shut down (handled locally only).
    send_failed_stopped,
    /// Events still queued at the shutdown deadline: handed back by `shutdown()`.
    unsent_at_shutdown,
    /// Messages and entries received.
    received,
    /// Received events published on the local bus.
    dispatched,
    /// Received events that no local handler took.
    unhandled,
    /// Received events this process (broadcast) or service (durable) sent itself.
    skipped_own,
    /// Durable entries dropped as duplicates.
    duplicates,
    /// Not JSON, or not a valid CloudEvent.
    malformed,
    /// CloudEvents of a type no distributed event has.
    unknown_type,
    /// CloudEvents of a known type at an unknown version.
    unknown_version,
    /// CloudEvents of a known type at a version newer than any this process knows (its
    /// sender was upgraded first).
    newer_version,
    /// CloudEvents whose data does not fit the event type.
    bad_data,
    /// Durable entries whose local handling failed (to be retried).
    handler_failures,
    /// Durable entries moved to the dead-letter stream.
    dead_lettered,
    /// Connection errors met (each followed by a reconnect).
    connection_errors,
}

impl Diagnostics {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        Self::add(counter, 1);
    }

    /// Counts a decode error under its kind.
    pub(crate) fn decode_error(&self, error: &crate::wire::DecodeError) {
        use crate::wire::DecodeError;
        Self::bump(match error {
            DecodeError::Malformed(_) => &self.malformed,
            DecodeError::UnknownType { .. } => &self.unknown_type,
            DecodeError::UnknownVersion { .. } => &self.unknown_version,
            DecodeError::NewerVersion { .. } => &self.newer_version,
            _ => &self.bad_data,
        });
    }
}
