//! The engine: runs published events through the middleware pipeline to their handlers, in
//! the order the router resolved, each call guarded against panics and timeouts; and keeps
//! the lifecycle of emitted work. The [`EventBus`](crate::EventBus) is its facade.
//!
//! - [`router`]: who handles a concrete event type, in which order (cached plans);
//! - [`invoke`]: one event through its plan: the one place a handler is called and a panic is
//!   caught, under its policy (timeout, retries, error callback);
//! - [`pipeline`]: the middleware chain (`Middleware`, `Envelope`, `Next`);
//! - [`lifecycle`]: emitted work, its in-flight cap, and graceful shutdown;
//! - [`emit_queue`]: the queue that runs emitted events in batches;
//! - [`upcast`]: an `#[upcast]` fn compiled with the dispatch of what it makes.
//!
//! Handlers reach the engine only through [`FollowUps`], the narrow handle their `Context`
//! holds.

mod emit_queue;
mod invoke;
mod lifecycle;
pub(crate) mod pipeline;
mod router;
mod upcast;

pub use lifecycle::{ShutdownReport, UnfinishedEvent};
pub(crate) use router::Router;
pub use upcast::{upcast_then, InlineUpcaster};

use crate::event::{ErasedEvent, EventId, EventMeta, EventType, Headers};
use crate::handler::{Context, FollowUps, SharedState, StateKeys};
use crate::report::{EmitErrorKind, PublishReport, Refusal};
use crate::topology::Contribution;
use emit_queue::EmitQueue;
use pipeline::Layer;
use rustc_hash::FxHashMap;
use std::any::TypeId;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Everything one bus is: its handlers, settings, and the work in flight.
pub(crate) struct Engine {
    /// Itself, for the work it spawns (emitted events hold the engine while they run).
    me: Weak<Engine>,
    pub(crate) router: Router,
    pub(crate) config: Config,
    /// Emitted work in flight, awaited by `shutdown`; closed when shutdown begins, which is
    /// what "shut down" means (see `lifecycle` for why the flag lives here).
    tracker: TaskTracker,
    /// Cancelled when shutdown begins: releases `emit_wait`s parked on a full bus.
    closing: CancellationToken,
    /// One permit per emitted event in flight: the `max_in_flight` cap.
    permits: Semaphore,
    /// Emitted events whose handlers run inline, waiting for the drain task.
    queue: EmitQueue,
    /// What is in flight, to report what a shutdown deadline cut off.
    in_flight: Mutex<FxHashMap<EventId, &'static str>>,
    /// What layers above (sagas, bridges) told the bus about themselves, for its topology,
    /// each under the id of the [`Contributed`] handle that withdraws it.
    contributions: Arc<Mutex<Vec<(u64, Contribution)>>>,
}

/// Settings fixed when the bus is built.
pub(crate) struct Config {
    pub(crate) max_depth: u32,
    pub(crate) max_in_flight: usize,
    pub(crate) default_timeout: Option<Duration>,
    pub(crate) mode: DispatchMode,
    pub(crate) layers: Vec<Layer>,
    pub(crate) on_dead_event: Option<DeadEventHook>,
    pub(crate) on_failure: Option<FailureHook>,
    /// The state given to the builder, by type: what `State<T>` parameters receive.
    pub(crate) states: FxHashMap<TypeId, (&'static str, SharedState)>,
    /// Publishers declared to the builder, for the topology: (event, who).
    pub(crate) publishers: Vec<(&'static EventType, String)>,
}

pub(crate) type DeadEventHook = Arc<dyn for<'a> Fn(Context<'a>) + Send + Sync>;
pub(crate) type FailureHook = Arc<dyn Fn(&PublishReport) + Send + Sync>;

impl Config {
    /// See [`Engine::states_for`].
    pub(crate) fn resolve_states(
        &self,
        declare: fn(&mut StateKeys),
    ) -> Result<Box<[SharedState]>, &'static str> {
        let mut keys = StateKeys::new();
        declare(&mut keys);
        keys.iter()
            .map(|key| match self.states.get(&key.type_id) {
                Some((_, state)) => Ok(Arc::clone(state)),
                None => Err(key.type_name),
            })
            .collect()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_depth: DEFAULT_MAX_DEPTH,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            default_timeout: None,
            mode: DispatchMode::default(),
            layers: Vec::new(),
            on_dead_event: None,
            on_failure: None,
            states: FxHashMap::default(),
            publishers: Vec::new(),
        }
    }
}

/// The default event-storm limit.
const DEFAULT_MAX_DEPTH: u32 = 32;
/// The default cap on emitted events in flight.
const DEFAULT_MAX_IN_FLIGHT: usize = 10_000;

/// Runs a user callback (a hook, an `on_error`) and contains its panic: logged with `what`
/// and `subject` (the event or handler it was called for), never passed on.
pub(crate) fn contain_panic(what: &str, subject: &str, callback: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(callback)).is_err() {
        tracing::error!(subject, "the {what} callback panicked");
    }
}

/// How one publish runs its handlers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum DispatchMode {
    /// One after another in dispatch order (the default).
    #[default]
    Sequential,
    /// Handlers of one priority run concurrently (each still isolated); priority levels still
    /// run in order, so validation (high priority) finishes before analytics (low) starts.
    ConcurrentWithinPriority,
}

impl Engine {
    pub(crate) fn new(router: Router, config: Config) -> Arc<Self> {
        Arc::new_cyclic(|me| Engine {
            me: me.clone(),
            router,
            permits: Semaphore::new(config.max_in_flight),
            queue: EmitQueue::default(),
            config,
            tracker: TaskTracker::new(),
            closing: CancellationToken::new(),
            in_flight: Mutex::default(),
            contributions: Arc::default(),
        })
    }

    /// The engine as an owned handle: `self` is always borrowed from a live `Arc`.
    fn arc(&self) -> Arc<Engine> {
        self.me
            .upgrade()
            .expect("an engine is only used through a live Arc")
    }

    pub(crate) fn layers(&self) -> &[Layer] {
        &self.config.layers
    }

    /// The middleware of type `M` this engine runs (a bridge checks that its outbound side
    /// is there).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn middleware_of<M: std::any::Any>(&self) -> impl Iterator<Item = &M> {
        self.layers()
            .iter()
            .filter_map(|layer| layer.as_any().downcast_ref::<M>())
    }

    /// The states a handler declares (through `declare`), in order; `Err` names the first
    /// one this bus was not given.
    pub(crate) fn states_for(
        &self,
        declare: fn(&mut StateKeys),
    ) -> Result<Box<[SharedState]>, &'static str> {
        self.config.resolve_states(declare)
    }

    /// Records what a layer above (a saga runtime, a bridge) adds to the topology, for as
    /// long as the returned handle lives: a layer that stops drops it, and leaves the
    /// topology.
    #[cfg_attr(not(feature = "wire"), allow(dead_code))]
    pub(crate) fn contribute(
        &self,
        contributions: impl IntoIterator<Item = Contribution>,
    ) -> Contributed {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        lock(&self.contributions).extend(contributions.into_iter().map(|c| (id, c)));
        Contributed {
            id,
            contributions: Arc::downgrade(&self.contributions),
        }
    }

    /// What layers above added to the topology and still hold, in the order they did.
    pub(crate) fn contributions(&self) -> Vec<Contribution> {
        let contributions = lock(&self.contributions);
        contributions.iter().map(|(_, c)| c.clone()).collect()
    }

    /// Whether shutdown has begun.
    pub(crate) fn is_shut_down(&self) -> bool {
        self.tracker.is_closed()
    }

    /// What a publish can settle at once, without a future: a refusal after shutdown, or
    /// the whole run when the inline path applies. `None`: [`run`](Self::run) it.
    pub(crate) fn publish_now(
        &self,
        event: &mut dyn ErasedEvent,
        meta: &mut EventMeta,
    ) -> Option<PublishReport> {
        if self.is_shut_down() {
            return Some(PublishReport::refused(meta, Refusal::ShutDown));
        }
        self.run_inline(event, meta)
    }

    fn publish_follow_up(
        &self,
        parent: &EventMeta,
        event: Box<dyn ErasedEvent>,
        headers: Headers,
    ) -> impl std::future::Future<Output = PublishReport> + Send + '_ {
        let mut meta = EventMeta::child(parent, event.event_type());
        meta.headers.extend(headers);
        self.publish_prepared(meta, event)
    }

    /// Publishes an event whose metadata is made already (a follow-up, or an event a saga
    /// committed to its outbox with its id).
    async fn publish_prepared(
        &self,
        mut meta: EventMeta,
        mut event: Box<dyn ErasedEvent>,
    ) -> PublishReport {
        if let Err(refusal) = self.check_depth(&meta) {
            return PublishReport::refused(&meta, refusal);
        }
        if let Some(report) = self.run_inline(&mut *event, &mut meta) {
            return report;
        }
        self.run(event, meta).await
    }

    pub(crate) fn check_depth(&self, meta: &EventMeta) -> Result<(), Refusal> {
        let max_depth = self.config.max_depth;
        if meta.depth <= max_depth {
            return Ok(());
        }
        let refusal = Refusal::TooDeep {
            max_depth,
            chain: meta.chain(),
        };
        tracing::warn!(event = meta.event_type.name(), %refusal, "publish refused");
        Err(refusal)
    }
}

impl FollowUps for Engine {
    fn publish<'a>(
        &'a self,
        parent: &'a EventMeta,
        event: Box<dyn ErasedEvent>,
        headers: Headers,
    ) -> crate::handler::BoxFuture<'a, PublishReport> {
        Box::pin(self.publish_follow_up(parent, event, headers))
    }

    fn emit(
        &self,
        parent: &EventMeta,
        event: Box<dyn ErasedEvent>,
        headers: Headers,
    ) -> Result<(), (EmitErrorKind, Box<dyn ErasedEvent>)> {
        self.emit_from(parent, event, headers)
    }

    fn publish_as(
        &self,
        meta: EventMeta,
        event: Box<dyn ErasedEvent>,
    ) -> crate::handler::BoxFuture<'_, PublishReport> {
        if self.is_shut_down() {
            return Box::pin(std::future::ready(PublishReport::refused(
                &meta,
                Refusal::ShutDown,
            )));
        }
        Box::pin(self.publish_prepared(meta, event))
    }

    fn to_arc(&self) -> Arc<dyn FollowUps> {
        self.arc()
    }
}

/// A layer's part of the topology (see [`Engine::contribute`]); dropping it takes the part out.
pub(crate) struct Contributed {
    id: u64,
    contributions: Weak<Mutex<Vec<(u64, Contribution)>>>,
}

impl Drop for Contributed {
    fn drop(&mut self) {
        if let Some(contributions) = self.contributions.upgrade() {
            lock(&contributions).retain(|(id, _)| *id != self.id);
        }
    }
}

/// A mutex's value, also after a panic elsewhere poisoned it: the engine's lists are only
/// ever pushed to, taken from or filtered, so each is whole at every unlock.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
