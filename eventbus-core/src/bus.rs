//! [`EventBus`]: publish, emit, subscribe, shut down.

use crate::dispatch::Router;
use crate::handler::{
    async_callable, sync_callable, AsyncHandler, Callable, HandlerEntry, SyncHandler,
};
use crate::middleware::Layer;
use crate::report::Refusal;
use crate::EventId;
use crate::{
    Context, Event, EventBusBuilder, EventMeta, EventType, Headers, PublishReport,
    SubscribeOptions, Subscription,
};
use rustc_hash::FxHashMap;
use std::fmt;
use std::panic::Location;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The event bus: dispatches each published event to every handler of its type and of its
/// ancestors, in one global order (see the crate docs), isolating failures.
///
/// Cheap to clone: clones share one bus.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) router: Router,
    pub(crate) config: Config,
    /// Emitted work in flight, awaited by `shutdown`; closed when shutdown begins, which is
    /// what "shut down" means (see `emit` for why the flag lives here).
    pub(crate) tracker: TaskTracker,
    /// Cancelled when shutdown begins: releases `emit_wait`s parked on a full bus.
    pub(crate) closing: CancellationToken,
    /// One permit per emitted event in flight: the `max_in_flight` cap.
    pub(crate) permits: Arc<Semaphore>,
    /// What is in flight, to report what a shutdown deadline cut off.
    pub(crate) in_flight: Mutex<FxHashMap<EventId, &'static str>>,
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
}

pub(crate) type DeadEventHook = Arc<dyn for<'a> Fn(Context<'a>) + Send + Sync>;
pub(crate) type FailureHook = Arc<dyn Fn(&PublishReport) + Send + Sync>;

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
        }
    }
}

/// The default event-storm limit.
pub(crate) const DEFAULT_MAX_DEPTH: u32 = 32;
/// The default cap on emitted events in flight.
pub(crate) const DEFAULT_MAX_IN_FLIGHT: usize = 10_000;

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

impl EventBus {
    /// A builder: link-time handlers, state, limits.
    pub fn builder() -> EventBusBuilder {
        EventBusBuilder::default()
    }

    /// A bus with no link-time handlers and default settings; add handlers with
    /// [`subscribe`](Self::subscribe).
    pub fn new() -> Self {
        Self::from_parts(Router::default(), Config::default())
    }

    pub(crate) fn from_parts(router: Router, config: Config) -> Self {
        EventBus {
            inner: Arc::new(Inner {
                router,
                permits: Arc::new(Semaphore::new(config.max_in_flight)),
                config,
                tracker: TaskTracker::new(),
                closing: CancellationToken::new(),
                in_flight: Mutex::default(),
            }),
        }
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    pub(crate) fn layers(&self) -> &[Layer] {
        &self.inner.config.layers
    }

    /// The middleware of type `M` this bus runs (a bridge checks that its outbound side is
    /// there).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn middleware_of<M: crate::middleware::Middleware>(
        &self,
    ) -> impl Iterator<Item = &M> {
        self.layers().iter().filter_map(|layer| {
            let any: &dyn std::any::Any = &*layer.middleware;
            any.downcast_ref::<M>()
        })
    }

    /// Publishes `event` and waits until every handler has run.
    ///
    /// The event passes through the middleware, then the handlers of its type and of all its
    /// ancestors run in dispatch order; a handler that returns `Err`, panics or times out is
    /// recorded in the report and the others still run. After [`shutdown`](Self::shutdown)
    /// the event is refused.
    pub async fn publish<E: Event>(&self, event: E) -> PublishReport {
        self.publish_meta(event, EventMeta::root(E::TYPE)).await
    }

    /// [`publish`](Self::publish) with headers, which handlers read through
    /// [`EventMeta::header`] (through `Context`) and middleware through the envelope;
    /// follow-ups inherit them.
    ///
    /// ```
    /// use eventbus_core::{Context, Event, EventBus, Headers};
    ///
    /// #[derive(Event)]
    /// struct Paid { cents: u64 }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let bus = EventBus::new();
    /// let _sub = bus.subscribe(|_: &Paid, ctx: Context| assert_eq!(ctx.header("tenant"), Some("acme")));
    /// let headers = Headers::from_iter([("tenant", "acme")]);
    /// assert!(bus.publish_with(Paid { cents: 5 }, headers).await.is_ok());
    /// # }
    /// ```
    pub async fn publish_with<E: Event>(&self, event: E, headers: Headers) -> PublishReport {
        self.publish_meta(event, EventMeta::root(E::TYPE).with_headers(headers))
            .await
    }

    async fn publish_meta<E: Event>(&self, event: E, meta: EventMeta) -> PublishReport {
        if self.is_shut_down() {
            return PublishReport::refused(E::TYPE, meta.id, Refusal::ShutDown);
        }
        if let Some(report) = self.try_dispatch_inline(&event, &meta) {
            return report;
        }
        self.run(event, meta).await
    }

    /// Subscribes a closure or fn taking `&E` (and optionally [`Context`]), returning `()` or
    /// `Result<(), E>`. It receives every `E`, including every event derived from `E`.
    ///
    /// ```
    /// use eventbus_core::{Context, Event, EventBus};
    ///
    /// #[derive(Event)]
    /// struct Shipped { parcel: u32 }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let bus = EventBus::new();
    /// let _log = bus.subscribe(|e: &Shipped, ctx: Context| println!("{} {}", ctx.event_name(), e.parcel));
    /// let _check = bus.subscribe(|e: &Shipped| if e.parcel == 0 { Err("no parcel") } else { Ok(()) });
    /// assert!(bus.publish(Shipped { parcel: 7 }).await.is_ok());
    /// # }
    /// ```
    #[track_caller]
    pub fn subscribe<E: Event, Args>(&self, handler: impl SyncHandler<E, Args>) -> Subscription {
        self.subscribe_with(SubscribeOptions::new(), handler)
    }

    /// [`subscribe`](Self::subscribe) with a priority and a name.
    #[track_caller]
    pub fn subscribe_with<E: Event, Args>(
        &self,
        options: SubscribeOptions,
        handler: impl SyncHandler<E, Args>,
    ) -> Subscription {
        self.add::<E>(
            options,
            sync_callable::<E, Args>(handler),
            Location::caller(),
        )
    }

    /// Subscribes an `async fn` taking `&E` (and optionally [`Context`]), or a closure returning
    /// a `Send + 'static` future.
    ///
    /// ```
    /// use eventbus_core::{Context, Event, EventBus};
    ///
    /// #[derive(Event)]
    /// struct Shipped { parcel: u32 }
    ///
    /// async fn notify(e: &Shipped, ctx: Context<'_>) -> Result<(), std::io::Error> {
    ///     tokio::task::yield_now().await;
    ///     println!("parcel {} ({})", e.parcel, ctx.event_id());
    ///     Ok(())
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let bus = EventBus::new();
    /// let _a = bus.subscribe_async(notify);
    /// let _b = bus.subscribe_async(|e: &Shipped| {
    ///     let parcel = e.parcel; // a closure's future cannot borrow the event: copy what it needs
    ///     async move { println!("parcel {parcel}") }
    /// });
    /// assert_eq!(bus.publish(Shipped { parcel: 7 }).await.handled(), 2);
    /// # }
    /// ```
    #[track_caller]
    pub fn subscribe_async<E: Event, Args, H>(&self, handler: H) -> Subscription
    where
        H: for<'a> AsyncHandler<'a, E, Args>,
    {
        self.subscribe_async_with(SubscribeOptions::new(), handler)
    }

    /// [`subscribe_async`](Self::subscribe_async) with a priority and a name.
    #[track_caller]
    pub fn subscribe_async_with<E: Event, Args, H>(
        &self,
        options: SubscribeOptions,
        handler: H,
    ) -> Subscription
    where
        H: for<'a> AsyncHandler<'a, E, Args>,
    {
        self.add::<E>(
            options,
            async_callable::<E, Args, H>(handler),
            Location::caller(),
        )
    }

    /// The handlers a published `E` would reach, in the order they would run.
    pub fn handlers_for<E: Event>(&self) -> Vec<HandlerInfo> {
        self.inner
            .router
            .plan(E::TYPE)
            .steps
            .iter()
            .map(|step| HandlerInfo {
                name: step.handler.name.to_string(),
                priority: step.handler.priority,
                event_type: step.handler.event,
            })
            .collect()
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shut_down(&self) -> bool {
        self.inner.tracker.is_closed()
    }

    /// The configured event-storm limit.
    pub fn max_depth(&self) -> u32 {
        self.inner.config.max_depth
    }

    pub(crate) async fn publish_from<E: Event>(
        &self,
        parent: &EventMeta,
        event: E,
        headers: Headers,
    ) -> PublishReport {
        let mut meta = EventMeta::child(parent, E::TYPE);
        meta.headers.extend(headers);
        if let Err(refusal) = self.check_depth(&meta) {
            return PublishReport::refused(E::TYPE, meta.id, refusal);
        }
        if let Some(report) = self.try_dispatch_inline(&event, &meta) {
            return report;
        }
        self.run(event, meta).await
    }

    pub(crate) fn check_depth(&self, meta: &EventMeta) -> Result<(), Refusal> {
        let max_depth = self.inner.config.max_depth;
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

    #[track_caller]
    fn add<E: Event>(
        &self,
        options: SubscribeOptions,
        callable: Callable,
        location: &Location<'_>,
    ) -> Subscription {
        let name = options.name.map_or_else(
            || {
                format!(
                    "{} subscriber at {}:{}",
                    E::TYPE.name(),
                    location.file(),
                    location.line()
                )
            },
            String::from,
        );
        let id = self.inner.router.add(HandlerEntry {
            id: 0,
            name: name.into(),
            priority: options.priority,
            event: E::TYPE,
            registered: false,
            callable,
            policy: options.policy,
        });
        Subscription::new(Arc::downgrade(&self.inner), id)
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for EventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBus")
            .field("max_depth", &self.inner.config.max_depth)
            .field(
                "middleware",
                &self.layers().iter().map(|l| &*l.name).collect::<Vec<_>>(),
            )
            .field("mode", &self.inner.config.mode)
            .field("shut_down", &self.is_shut_down())
            .field("emitted_in_flight", &self.inner.tracker.len())
            .finish()
    }
}

/// A handler as listed by [`EventBus::handlers_for`].
#[derive(Clone, Debug)]
pub struct HandlerInfo {
    name: String,
    priority: i32,
    event_type: &'static EventType,
}

impl HandlerInfo {
    /// The handler's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its priority.
    pub fn priority(&self) -> i32 {
        self.priority
    }

    /// The event type it subscribed to.
    pub fn event_type(&self) -> &'static EventType {
        self.event_type
    }
}
