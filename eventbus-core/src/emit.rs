//! Fire-and-forget publishing: [`EventBus::emit`], its in-flight cap, and graceful shutdown.

use crate::report::Refusal;
use crate::{Event, EventBus, EventId, EventMeta, Headers};
use std::fmt;
use std::sync::PoisonError;
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::task::task_tracker::TaskTrackerToken;

impl EventBus {
    /// Publishes `event` on the tokio runtime without waiting for its handlers.
    ///
    /// At most [`max_in_flight`](crate::EventBusBuilder::max_in_flight) emitted events are in
    /// flight at once; past that `emit` fails with [`EmitErrorKind::Full`] (or use
    /// [`emit_wait`](Self::emit_wait) to wait for room). Failures of the handlers go to the
    /// [`on_failure`](crate::EventBusBuilder::on_failure) hook, or to `tracing` without one.
    ///
    /// An `Ok` is a promise: [`shutdown`](Self::shutdown) does not return before the event's
    /// handlers have run, even when the two race. On error the event was not dispatched, and
    /// is handed back in the [`EmitError`].
    pub fn emit<E: Event>(&self, event: E) -> Result<(), EmitError<E>> {
        self.emit_with(event, Headers::new())
    }

    /// [`emit`](Self::emit) with headers, which handlers read through
    /// [`EventMeta::header`](crate::EventMeta::header) and middleware through the envelope.
    pub fn emit_with<E: Event>(&self, event: E, headers: Headers) -> Result<(), EmitError<E>> {
        let work = match self.accept_work(false) {
            Ok(work) => work,
            Err(refusal) => return Err(EmitError::new(EmitErrorKind::Refused(refusal), event)),
        };
        let permit = match self.try_permit::<E>() {
            Ok(permit) => permit,
            Err(kind) => return Err(EmitError::new(kind, event)),
        };
        self.spawn(
            event,
            EventMeta::root(E::TYPE).with_headers(headers),
            work,
            permit,
        )
    }

    /// Like [`emit`](Self::emit), but waits for room when `max_in_flight` events are in flight.
    /// A wait still parked when shutdown begins ends at once with
    /// [`Refusal::ShutDown`]. Do not call it from a handler (a handler holding room while
    /// waiting for room can deadlock); handlers use [`Context::emit`](crate::Context::emit).
    pub async fn emit_wait<E: Event>(&self, event: E) -> Result<(), EmitError<E>> {
        let shut_down = |event| {
            Err(EmitError::new(
                EmitErrorKind::Refused(Refusal::ShutDown),
                event,
            ))
        };
        let permits = self.inner().permits.clone();
        let permit = tokio::select! {
            // Shutdown first: a wait that finds both ready is refused, like a plain emit.
            biased;
            () = self.inner().closing.cancelled() => return shut_down(event),
            permit = permits.acquire_owned() => permit.expect("the in-flight semaphore is never closed"),
        };
        let work = match self.accept_work(false) {
            Ok(work) => work,
            Err(_) => return shut_down(event),
        };
        self.spawn(event, EventMeta::root(E::TYPE), work, permit)
    }

    pub(crate) fn emit_from<E: Event>(
        &self,
        parent: &EventMeta,
        event: E,
        headers: Headers,
    ) -> Result<(), EmitError<E>> {
        let mut meta = EventMeta::child(parent, E::TYPE);
        meta.headers.extend(headers);
        let accepted = self
            .check_depth(&meta)
            .and_then(|()| self.accept_work(parent.awaited_by_shutdown));
        let work = match accepted {
            Ok(work) => work,
            Err(refusal) => return Err(EmitError::new(EmitErrorKind::Refused(refusal), event)),
        };
        match self.try_permit::<E>() {
            Ok(permit) => self.spawn(event, meta, work, permit),
            Err(kind) => Err(EmitError::new(kind, event)),
        }
    }

    /// Stops accepting new events, then waits until all emitted work is done, including
    /// follow-ups that running handlers emit.
    pub async fn shutdown(&self) {
        self.begin_shutdown();
        self.inner().tracker.wait().await;
    }

    /// Like [`shutdown`](Self::shutdown), but waits at most `deadline`; the report lists the
    /// emitted events that had not finished by then (they go on running in the background).
    pub async fn shutdown_timeout(&self, deadline: Duration) -> ShutdownReport {
        self.begin_shutdown();
        if tokio::time::timeout(deadline, self.inner().tracker.wait())
            .await
            .is_ok()
        {
            return ShutdownReport::default();
        }
        let in_flight = self.inner().in_flight.lock();
        let mut unfinished: Vec<UnfinishedEvent> = in_flight
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(id, name)| UnfinishedEvent { id: *id, name })
            .collect();
        unfinished.sort_by_key(|e| e.id);
        ShutdownReport { unfinished }
    }

    fn begin_shutdown(&self) {
        self.inner().tracker.close();
        self.inner().closing.cancel();
    }

    /// Registers new emitted work with the tracker that `shutdown` waits on, unless the bus is
    /// shut down. The token is taken *before* the closed bit is read: both live in the
    /// tracker's one atomic word, so either this read sees the close (refused), or the close
    /// comes later and `shutdown`'s wait sees this token and waits for the work (accepted).
    /// Reading a separate flag first and registering after leaves a gap in which both miss.
    ///
    /// Work inside emitted work (`in_awaited_work`) is accepted while shutdown drains: its
    /// parent's token keeps the wait from finishing, so nothing accepted here can be missed.
    fn accept_work(&self, in_awaited_work: bool) -> Result<TaskTrackerToken, Refusal> {
        let token = self.inner().tracker.token();
        if token.task_tracker().is_closed() && !in_awaited_work {
            return Err(Refusal::ShutDown);
        }
        Ok(token)
    }

    /// A slot under the `max_in_flight` cap, or `Full`.
    fn try_permit<E: Event>(&self) -> Result<OwnedSemaphorePermit, EmitErrorKind> {
        self.inner()
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                let capacity = self.inner().config.max_in_flight;
                tracing::warn!(
                    event = E::TYPE.name(),
                    capacity,
                    "emit refused: bus is full"
                );
                EmitErrorKind::Full { capacity }
            })
    }

    fn spawn<E: Event>(
        &self,
        event: E,
        mut meta: EventMeta,
        work: TaskTrackerToken,
        permit: OwnedSemaphorePermit,
    ) -> Result<(), EmitError<E>> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(EmitError::new(EmitErrorKind::NoRuntime, event));
        };
        // Emitted work runs later: its time is now.
        meta.stamp();
        meta.awaited_by_shutdown = true;
        let (id, name) = (meta.id, meta.event_type.name());
        self.in_flight().insert(id, name);
        let bus = self.clone();
        runtime.spawn(async move {
            let report = bus.run(event, meta).await;
            bus.in_flight().remove(&id);
            drop(permit);
            if !report.is_ok() {
                bus.report_emit_failure(report);
            }
            // Last: `shutdown` may return once every token is dropped.
            drop(work);
        });
        Ok(())
    }

    /// Hands the report of an emitted event that failed to the `on_failure` hook, or to
    /// `tracing` without one.
    fn report_emit_failure(&self, report: crate::PublishReport) {
        let (name, id) = (report.event_type().name(), report.event_id());
        match &self.inner().config.on_failure {
            Some(hook) => {
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(&report))).is_err()
                {
                    tracing::error!(event = name, %id, "the on_failure hook panicked");
                }
            }
            None => {
                if let Err(error) = report.into_result() {
                    tracing::warn!(event = name, %id, %error, "emitted event failed");
                }
            }
        }
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, rustc_hash::FxHashMap<EventId, &'static str>> {
        self.inner()
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Why an emit did not dispatch its event; holds the event, so nothing is lost.
pub struct EmitError<E> {
    kind: EmitErrorKind,
    event: E,
}

impl<E> EmitError<E> {
    fn new(kind: EmitErrorKind, event: E) -> Self {
        EmitError { kind, event }
    }

    /// Why.
    pub fn kind(&self) -> &EmitErrorKind {
        &self.kind
    }

    /// The event, back to the caller.
    pub fn into_event(self) -> E {
        self.event
    }
}

/// Why an emit was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EmitErrorKind {
    /// The bus refused it: shut down, or an event storm.
    Refused(Refusal),
    /// `max_in_flight` emitted events are already in flight.
    Full {
        /// The configured cap.
        capacity: usize,
    },
    /// `emit` was called outside a tokio runtime.
    NoRuntime,
}

impl<E> fmt::Debug for EmitError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmitError")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl<E> fmt::Display for EmitError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            EmitErrorKind::Refused(refusal) => write!(f, "event not emitted: {refusal}"),
            EmitErrorKind::Full { capacity } => write!(
                f,
                "event not emitted: {capacity} emitted events are already in flight"
            ),
            EmitErrorKind::NoRuntime => {
                f.write_str("event not emitted: no tokio runtime is running")
            }
        }
    }
}

impl<E> std::error::Error for EmitError<E> {}

/// What [`EventBus::shutdown_timeout`] could not finish.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    unfinished: Vec<UnfinishedEvent>,
}

impl ShutdownReport {
    /// `true` when all emitted work finished before the deadline.
    pub fn is_complete(&self) -> bool {
        self.unfinished.is_empty()
    }

    /// The emitted events still running at the deadline.
    pub fn unfinished(&self) -> &[UnfinishedEvent] {
        &self.unfinished
    }
}

/// An emitted event that had not finished at a shutdown deadline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnfinishedEvent {
    /// Its id.
    pub id: EventId,
    /// Its event name.
    pub name: &'static str,
}
