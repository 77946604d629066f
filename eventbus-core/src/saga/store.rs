//! Where saga instances live: the [`SagaStore`] interface.

use crate::event::EventId;
use crate::handler::BoxFuture;
use std::fmt;
use std::time::{Duration, SystemTime};

/// Where saga instances are kept. [`MemoryStore`](super::MemoryStore) is the default.
///
/// A store keeps, per `(saga, key)`, the state as JSON, a version, the ids of the events the
/// instance processed, and whether it ended. [`commit`](Self::commit) must be atomic: it
/// writes only when the stored version is still the one the step read
/// ([`Commit::expected_version`]), and otherwise answers [`Committed::Conflict`].
pub trait SagaStore: Send + Sync + 'static {
    /// The instance of `saga` with `key`, if there is one.
    fn load<'a>(
        &'a self,
        saga: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Instance>, StoreError>>;

    /// Writes a step's outcome, if the instance is still at `commit.expected_version`. A
    /// store with an [`outbox`](Self::outbox) writes [`Commit::outbox`] in the same
    /// transaction, and on a commit that ends the instance drops its scheduled entries.
    fn commit<'a>(
        &'a self,
        saga: &'a str,
        key: &'a str,
        commit: Commit,
    ) -> BoxFuture<'a, Result<Committed, StoreError>>;

    /// Where this store keeps what steps publish and schedule, committed with their state, for
    /// a relay to deliver if the process dies before it does; `None` (the default) for a store
    /// that keeps nothing across a restart, such as the in-memory one.
    fn outbox(&self) -> Option<&dyn Outbox> {
        None
    }
}

/// The events sagas committed and have yet to deliver: published right after their commit,
/// or scheduled for later. A relay [`claim`](Self::claim)s those due, publishes them and marks
/// them [`delivered`](Self::delivered); a claim is a lease, so an entry whose deliverer died is
/// claimed again when the lease runs out (at least once; the event keeps its id, by which
/// sagas recognise a second delivery).
pub trait Outbox: Send + Sync {
    /// Up to `limit` entries due now, leased to the caller for `lease`.
    fn claim(
        &self,
        limit: usize,
        lease: Duration,
    ) -> BoxFuture<'_, Result<Vec<OutboxEntry>, StoreError>>;

    /// Removes delivered entries.
    fn delivered<'a>(&'a self, ids: &'a [EventId]) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// One event in an [`Outbox`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct OutboxEntry {
    /// The event's id: the same on every delivery.
    pub id: EventId,
    /// The saga instance whose step published it.
    pub saga: String,
    /// Its key.
    pub key: String,
    /// The event as a CloudEvent (JSON, structured mode).
    pub payload: String,
    /// When it is due: for an event published right after its commit, a grace period after
    /// it (the committing process publishes it and removes the entry first); for a scheduled
    /// event, its time.
    pub deliver_at: SystemTime,
    /// Scheduled by its step (dropped when the instance ends), rather than published.
    pub scheduled: bool,
}

impl OutboxEntry {
    /// An entry (for stores and their tests; the saga runtime makes these).
    pub fn new(
        id: EventId,
        (saga, key): (&str, &str),
        payload: String,
        deliver_at: SystemTime,
        scheduled: bool,
    ) -> Self {
        OutboxEntry {
            id,
            saga: saga.to_owned(),
            key: key.to_owned(),
            payload,
            deliver_at,
            scheduled,
        }
    }
}

/// A saga instance as stored.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Instance {
    /// The state, as JSON.
    pub state: serde_json::Value,
    /// Bumped by every commit; the first commit writes version 1.
    pub version: u64,
    /// Running, or how it ended.
    pub status: Status,
    /// The events it processed, oldest first.
    pub processed: Vec<EventId>,
}

impl Instance {
    /// A new instance (for stores).
    pub fn new(
        state: serde_json::Value,
        version: u64,
        status: Status,
        processed: Vec<EventId>,
    ) -> Self {
        Instance {
            state,
            version,
            status,
            processed,
        }
    }
}

/// Whether an instance runs, or how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// It takes events.
    Running,
    /// A step called [`SagaContext::complete`](super::SagaContext::complete).
    Completed,
    /// A step called [`SagaContext::compensate`](super::SagaContext::compensate), with the
    /// reason.
    Compensated(String),
}

impl Status {
    /// Whether it ended (completed or compensated).
    pub fn has_ended(&self) -> bool {
        !matches!(self, Status::Running)
    }
}

/// One step's outcome, to be written over [`expected_version`](Self::expected_version).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Commit {
    /// The version the step read; `None` when it created the instance (the commit must then
    /// fail with a conflict if the instance exists by now).
    pub expected_version: Option<u64>,
    /// The new state.
    pub state: serde_json::Value,
    /// The new status.
    pub status: Status,
    /// The event the step processed, added to [`Instance::processed`].
    pub event_id: EventId,
    /// What the step published and scheduled, for a store with an [`Outbox`]; empty
    /// otherwise.
    pub outbox: Vec<OutboxEntry>,
}

impl Commit {
    /// A step's outcome (for stores and their tests; the saga runtime makes these).
    pub fn new(
        expected_version: Option<u64>,
        state: serde_json::Value,
        status: Status,
        event_id: EventId,
    ) -> Self {
        Commit {
            expected_version,
            state,
            status,
            event_id,
            outbox: Vec::new(),
        }
    }
}

/// What [`SagaStore::commit`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Committed {
    /// Written; the instance is at this version now.
    Written(u64),
    /// Not written: the instance changed since the step read it (or exists, for a start).
    Conflict,
}

/// A store failed (a connection, a query).
#[derive(Debug)]
pub struct StoreError(Box<dyn std::error::Error + Send + Sync>);

impl StoreError {
    /// Wraps the cause.
    pub fn new(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StoreError(cause.into())
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "saga store: {}", self.0)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}
