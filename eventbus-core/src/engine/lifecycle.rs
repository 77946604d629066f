//! Fire-and-forget publishing (`emit`), its in-flight cap, and graceful shutdown.

use super::emit_queue::Queued;
use super::{contain_panic, Engine};
use crate::event::{ErasedEvent, EventId, EventMeta, Headers, OwnedEvent};
use crate::report::{EmitErrorKind, PublishReport, Refusal};
use std::time::Duration;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tracing::Instrument;

impl Engine {
    /// Emits a top-level event; on refusal, why (the caller hands the event back).
    pub(crate) fn emit<E: OwnedEvent>(
        &self,
        event: E,
        meta: EventMeta,
    ) -> Result<(), (EmitErrorKind, E)> {
        self.emit_meta(event, meta, false)
    }

    /// Accepts an event with its metadata as emitted work: within the storm guard, before
    /// shutdown (or inside work shutdown awaits, `in_awaited_work`), on a runtime, and under
    /// the cap.
    fn emit_meta<E: OwnedEvent>(
        &self,
        event: E,
        meta: EventMeta,
        in_awaited_work: bool,
    ) -> Result<(), (EmitErrorKind, E)> {
        let accepted = self
            .check_depth(&meta)
            .and_then(|()| self.accept_work(in_awaited_work));
        let work = match accepted {
            Ok(work) => work,
            Err(refusal) => return Err((EmitErrorKind::Refused(refusal), event)),
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err((EmitErrorKind::NoRuntime, event));
        };
        if let Err(kind) = self.try_permit(&meta) {
            return Err((kind, event));
        }
        self.start_work(event, meta, work, &runtime);
        Ok(())
    }

    /// Like [`emit`](Self::emit), but waits for room; a wait still parked when shutdown
    /// begins ends at once, refused.
    pub(crate) async fn emit_wait<E: OwnedEvent>(
        &self,
        event: E,
        meta: EventMeta,
    ) -> Result<(), (EmitErrorKind, E)> {
        let shut_down = |event| Err((EmitErrorKind::Refused(Refusal::ShutDown), event));
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err((EmitErrorKind::NoRuntime, event));
        };
        tokio::select! {
            // Shutdown first: a wait that finds both ready is refused, like a plain emit.
            biased;
            () = self.closing.cancelled() => return shut_down(event),
            permit = self.permits.acquire() => permit.expect("the in-flight semaphore is never closed").forget(),
        }
        let work = match self.accept_work(false) {
            Ok(work) => work,
            Err(_) => {
                self.permits.add_permits(1);
                return shut_down(event);
            }
        };
        self.start_work(event, meta, work, &runtime);
        Ok(())
    }

    /// Emits a follow-up of `parent`, published by one of its handlers.
    pub(crate) fn emit_from(
        &self,
        parent: &EventMeta,
        event: Box<dyn ErasedEvent>,
        headers: Headers,
    ) -> Result<(), (EmitErrorKind, Box<dyn ErasedEvent>)> {
        let mut meta = EventMeta::child(parent, event.event_type());
        meta.headers.extend(headers);
        self.emit_meta(event, meta, parent.awaited_by_shutdown)
    }

    /// Stops accepting new events, then waits until all emitted work is done, including
    /// follow-ups that running handlers emit.
    pub(crate) async fn shutdown(&self) {
        self.begin_shutdown();
        self.tracker.wait().await;
    }

    /// Like [`shutdown`](Self::shutdown), but waits at most `deadline`.
    pub(crate) async fn shutdown_timeout(&self, deadline: Duration) -> ShutdownReport {
        self.begin_shutdown();
        if tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_ok()
        {
            return ShutdownReport::default();
        }
        let mut unfinished: Vec<UnfinishedEvent> = self
            .in_flight()
            .iter()
            .map(|(id, name)| UnfinishedEvent { id: *id, name })
            .collect();
        self.queue.unfinished(&mut unfinished);
        unfinished.sort_by_key(|e| e.id);
        ShutdownReport { unfinished }
    }

    fn begin_shutdown(&self) {
        self.tracker.close();
        self.closing.cancel();
        self.resume_drain();
    }

    /// How many emitted events are in flight.
    pub(crate) fn emitted_in_flight(&self) -> usize {
        self.config.max_in_flight - self.permits.available_permits()
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
        let token = self.tracker.token();
        if token.task_tracker().is_closed() && !in_awaited_work {
            return Err(Refusal::ShutDown);
        }
        Ok(token)
    }

    /// Takes a slot under the `max_in_flight` cap (given back when the event is done), or
    /// `Full`.
    fn try_permit(&self, meta: &EventMeta) -> Result<(), EmitErrorKind> {
        match self.permits.try_acquire() {
            Ok(permit) => {
                permit.forget();
                Ok(())
            }
            Err(_) => {
                let capacity = self.config.max_in_flight;
                tracing::warn!(
                    event = meta.event_name(),
                    capacity,
                    "emit refused: bus is full"
                );
                Err(EmitErrorKind::Full { capacity })
            }
        }
    }

    /// Starts accepted work: queued when its handlers run inline, else a task of its own.
    fn start_work<E: OwnedEvent>(
        &self,
        event: E,
        mut meta: EventMeta,
        work: TaskTrackerToken,
        runtime: &tokio::runtime::Handle,
    ) {
        meta.awaited_by_shutdown = true;
        // The handlers run later, elsewhere: inside the emitter's span, so a trace follows
        // the event. Without any subscriber there is no span to look up.
        let span = match tracing::dispatcher::has_been_set() {
            true => tracing::Span::current(),
            false => tracing::Span::none(),
        };
        if self.runs_inline(meta.event_type) {
            let event = event.small();
            self.enqueue(Queued { event, meta, span }, work, runtime);
            return;
        }
        // It runs later, and may await before it reads its time: its time is now. (A queued
        // event reads the clock only if asked, as a publish does: its handlers do not await.)
        meta.stamp();
        let (id, name) = (meta.event_id(), meta.event_type.name());
        self.in_flight().insert(id, name);
        let engine = self.arc();
        let task = async move {
            let report = engine.run(event, meta).await;
            engine.in_flight().remove(&id);
            engine.permits.add_permits(1);
            if !report.is_ok() {
                engine.report_emit_failure(report);
            }
            // Last: `shutdown` may return once every token is dropped.
            drop(work);
        };
        runtime.spawn(task.instrument(span));
    }

    /// Hands the report of an emitted event that failed to the `on_failure` hook, or to
    /// `tracing` without one.
    pub(super) fn report_emit_failure(&self, report: PublishReport) {
        let (name, id) = (report.event_type().name(), report.event_id());
        match &self.config.on_failure {
            Some(hook) => contain_panic("on_failure", name, || hook(&report)),
            None => {
                if let Err(error) = report.into_result() {
                    tracing::warn!(event = name, %id, %error, "emitted event failed");
                }
            }
        }
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, rustc_hash::FxHashMap<EventId, &'static str>> {
        super::lock(&self.in_flight)
    }
}

/// What [`EventBus::shutdown_timeout`](crate::EventBus::shutdown_timeout) could not finish.
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
#[non_exhaustive]
pub struct UnfinishedEvent {
    /// Its id.
    pub id: EventId,
    /// Its event name.
    pub name: &'static str,
}
