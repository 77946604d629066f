//! [`SagaContext`]: what a step may do besides changing its state.

use super::store::Status;
use crate::event::{ErasedEvent, Event, EventMeta};
use std::fmt;
use std::ops::Deref;
use std::time::Duration;

/// What a saga step may do besides changing its state: publish events, schedule a timeout,
/// end the saga. None of it happens unless the step's state change commits, and then it
/// happens once.
///
/// It dereferences to the [`EventMeta`] of the event being handled.
pub struct SagaContext<'a> {
    meta: &'a EventMeta,
    key: &'a str,
    pub(crate) effects: Effects,
}

/// What a step asked for, applied after its commit.
pub(crate) struct Effects {
    pub(crate) publish: Vec<Box<dyn ErasedEvent>>,
    pub(crate) schedule: Vec<(Duration, Box<dyn ErasedEvent>)>,
    /// `Running` unless the step ended the saga.
    pub(crate) status: Status,
}

impl Default for Effects {
    fn default() -> Self {
        Effects {
            publish: Vec::new(),
            schedule: Vec::new(),
            status: Status::Running,
        }
    }
}

impl<'a> SagaContext<'a> {
    pub(crate) fn new(meta: &'a EventMeta, key: &'a str) -> Self {
        SagaContext {
            meta,
            key,
            effects: Effects::default(),
        }
    }

    /// The key of the instance this step runs on.
    pub fn key(&self) -> &str {
        self.key
    }

    /// Publishes `event` once the step commits, as a follow-up of the event being handled
    /// (same correlation id, caused by it).
    pub fn publish<E: Event>(&mut self, event: E) {
        self.effects.publish.push(Box::new(event));
    }

    /// Publishes `event` after `delay`, unless the saga has ended by then: "if the inventory
    /// is not reserved within 30 minutes, cancel". Handle it with a step of this saga.
    pub fn schedule<E: Event>(&mut self, delay: Duration, event: E) {
        self.effects.schedule.push((delay, Box::new(event)));
    }

    /// Ends the saga: its state is kept, later events for it are ignored, its scheduled
    /// events never fire.
    pub fn complete(&mut self) {
        self.effects.status = Status::Completed;
    }

    /// Ends the saga as compensated, with the reason: publish the compensating events with
    /// [`publish`](Self::publish) in the same step. Otherwise like [`complete`](Self::complete).
    pub fn compensate(&mut self, reason: impl Into<String>) {
        self.effects.status = Status::Compensated(reason.into());
    }
}

impl Deref for SagaContext<'_> {
    type Target = EventMeta;

    fn deref(&self) -> &EventMeta {
        self.meta
    }
}

impl fmt::Debug for SagaContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SagaContext")
            .field("event", &self.meta.event_name())
            .field("key", &self.key)
            .field("publish", &self.effects.publish.len())
            .field("schedule", &self.effects.schedule.len())
            .field("status", &self.effects.status)
            .finish()
    }
}
