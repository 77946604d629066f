//! The queue of emitted events and the task that drains it.
//!
//! An emitted event whose handlers all run inline (plain sync handlers, no middleware) is not
//! given a task of its own: it is queued, and one drain task per bus runs the queue in
//! batches, so a burst costs one task, and an event no allocation unless it is larger than
//! four words (then one, its box). The
//! drain task exists only while there is work: the emit that finds the queue idle spawns it on
//! its own runtime, and it ends when the queue is empty.
//!
//! What `shutdown` relies on: every queued event is covered by a tracker token. An emit holds
//! its own token until the event is in the queue and a drain task is sure to see it (one that
//! runs holds a token of its own until it finds the queue empty), and a drain task dropped with
//! its runtime parks its token with what it left (see [`Drain`]'s `Drop`).

use super::{lock, Engine};
use crate::event::{EventMeta, SmallEvent};
use crate::UnfinishedEvent;
use std::collections::VecDeque;
use std::mem;
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio_util::task::task_tracker::TaskTrackerToken;

/// How many events of a batch run before their room under `max_in_flight` is given back.
const RELEASE_EVERY: usize = 64;

/// An emitted event waiting to run, with the span it was emitted in.
pub(super) struct Queued {
    pub(super) event: SmallEvent,
    pub(super) meta: EventMeta,
    pub(super) span: tracing::Span,
}

#[derive(Default)]
pub(super) struct EmitQueue {
    /// Where emits put events. Locked for a push or to take a whole batch at once, never
    /// while a handler runs; its buffer is kept, so a steady stream allocates nothing.
    pending: Mutex<VecDeque<Queued>>,
    /// A drain task is running, and will see what is queued before it ends.
    draining: AtomicBool,
    /// Covers what is queued, for `shutdown`, while no drain task does (see the module docs).
    parked: Mutex<Option<TaskTrackerToken>>,
    /// The batch the drain task is running. Locked only to swap batches and by a shutdown
    /// deadline's report, never while a handler runs.
    running: Mutex<Option<Arc<Batch>>>,
}

/// A batch being run: the events, and how many of them are done.
struct Batch {
    items: Vec<Queued>,
    done: AtomicUsize,
}

/// At most this many events are taken from the queue per batch.
const MAX_BATCH: usize = 256;

impl EmitQueue {
    fn is_empty(&self) -> bool {
        lock(&self.pending).is_empty()
    }

    /// Puts events at the head of the queue, before everything in it.
    fn push_front(&self, mut events: VecDeque<Queued>) {
        let mut pending = lock(&self.pending);
        events.append(&mut pending);
        *pending = events;
    }

    /// The next batch (at most `MAX_BATCH` events), appended to `into`.
    fn take_batch(&self, into: &mut Vec<Queued>) {
        let mut pending = lock(&self.pending);
        let take = pending.len().min(MAX_BATCH);
        into.extend(pending.drain(..take));
    }

    /// What is queued or running, for a shutdown deadline's report.
    pub(super) fn unfinished(&self, into: &mut Vec<UnfinishedEvent>) {
        let describe = |item: &Queued| UnfinishedEvent {
            id: item.meta.event_id(),
            name: item.meta.event_name(),
        };
        if let Some(batch) = &*lock(&self.running) {
            let done = batch.done.load(Ordering::Acquire);
            into.extend(batch.items[done..].iter().map(describe));
        }
        into.extend(lock(&self.pending).iter().map(describe));
    }
}

impl Engine {
    /// Queues an accepted event. `work` is the emit's token: it is dropped only once a drain
    /// task's token covers the event.
    pub(super) fn enqueue(
        &self,
        item: Queued,
        work: TaskTrackerToken,
        runtime: &tokio::runtime::Handle,
    ) {
        lock(&self.queue.pending).push_back(item);
        // Pairs with the fence of a drain task that is ending: either it sees this event,
        // or this emit sees that it ended.
        fence(Ordering::SeqCst);
        self.start_drain(runtime);
        drop(work);
    }

    /// Spawns a drain task unless one is running.
    fn start_drain(&self, runtime: &tokio::runtime::Handle) {
        let queue = &self.queue;
        if queue.draining.load(Ordering::Relaxed) || queue.draining.swap(true, Ordering::SeqCst) {
            return;
        }
        let token = lock(&queue.parked)
            .take()
            .unwrap_or_else(|| self.tracker.token());
        let drain = Drain {
            engine: self.arc(),
            token: Some(token),
            batch: None,
        };
        runtime.spawn(drain.run());
    }

    /// At shutdown: events left behind by a drain task that was dropped with its runtime
    /// are run now, so that `shutdown` does not wait for them forever.
    pub(super) fn resume_drain(&self) {
        if self.queue.is_empty() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.start_drain(&runtime);
        }
    }

    /// Runs one queued event, inside the span it was emitted in.
    async fn run_queued(&self, item: &Queued) {
        let report = {
            let _entered = item.span.enter();
            self.try_dispatch_inline(&*item.event, &item.meta)
        };
        // The plan changed since the emit (an async handler was subscribed): run it here.
        let report = match report {
            Some(report) => report,
            None => {
                use tracing::Instrument;
                item.meta.stamp();
                self.dispatch(&*item.event, &item.meta)
                    .instrument(item.span.clone())
                    .await
            }
        };
        if !report.is_ok() {
            self.report_emit_failure(report);
        }
    }
}

/// The drain task: runs batches until the queue is empty. Dropped before that (its runtime
/// shut down), it puts what it had not run back at the head of the queue, with its token.
struct Drain {
    engine: Arc<Engine>,
    token: Option<TaskTrackerToken>,
    batch: Option<Arc<Batch>>,
}

impl Drain {
    async fn run(mut self) {
        let engine = Arc::clone(&self.engine);
        let queue = &engine.queue;
        let mut spare = Vec::new();
        loop {
            let mut items = mem::take(&mut spare);
            queue.take_batch(&mut items);
            if items.is_empty() {
                queue.draining.store(false, Ordering::SeqCst);
                fence(Ordering::SeqCst);
                // Something came in meanwhile, and no emit started a new drain task for it.
                if !queue.is_empty() && !queue.draining.swap(true, Ordering::SeqCst) {
                    continue;
                }
                // Done: an emit from now on starts a new drain task.
                drop(self.token.take());
                return;
            }
            let batch = Arc::new(Batch {
                items,
                done: AtomicUsize::new(0),
            });
            *lock(&queue.running) = Some(Arc::clone(&batch));
            // Held only here (no local clone), so that `Drop` can take the batch back.
            let batch = &**self.batch.insert(batch);
            for (index, item) in batch.items.iter().enumerate() {
                self.engine.run_queued(item).await;
                batch.done.store(index + 1, Ordering::Release);
                // Room is given back in steps: each release takes the semaphore's lock.
                if (index + 1) % RELEASE_EVERY == 0 {
                    self.engine.permits.add_permits(RELEASE_EVERY);
                }
                // A long stream must not starve the other tasks of this worker.
                tokio::task::coop::consume_budget().await;
            }
            self.engine
                .permits
                .add_permits(batch.items.len() % RELEASE_EVERY);
            spare = self.finish_batch();
            spare.clear();
        }
    }

    /// The current batch's events, now that nothing else holds them (the report of a
    /// deadline reads them only under the `running` lock, without keeping a reference).
    fn finish_batch(&mut self) -> Vec<Queued> {
        let shared = lock(&self.engine.queue.running).take();
        drop(shared);
        self.batch
            .take()
            .and_then(|batch| Arc::try_unwrap(batch).ok())
            .map(|batch| batch.items)
            .unwrap_or_default()
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        // Dropped mid-run: its runtime is gone. Keep the rest (the event that was running
        // runs again) at the head of the queue, and keep shutdown waiting for it.
        let done = self
            .batch
            .as_ref()
            .map_or(0, |batch| batch.done.load(Ordering::Acquire));
        self.engine.permits.add_permits(done % RELEASE_EVERY);
        let mut left = VecDeque::from(self.finish_batch());
        left.drain(..done.min(left.len()));
        if !left.is_empty() {
            tracing::warn!(
                events = left.len(),
                "the runtime running emitted events shut down; they run at the next emit or shutdown"
            );
        }
        let queue = &self.engine.queue;
        queue.push_front(left);
        // Parked before the flag is cleared: the next drain task takes it.
        *lock(&queue.parked) = Some(token);
        queue.draining.store(false, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if queue.is_empty() {
            drop(lock(&queue.parked).take());
        }
    }
}
