//! The top layer: the [`EventBus`] facade over the engine, its [builder](EventBusBuilder), and
//! runtime [subscriptions](Subscription).

mod builder;
mod subscription;
mod topology;

pub use builder::{BuildError, BuildProblem, EventBusBuilder};
pub use subscription::Subscription;

use crate::engine::{Config, Engine, Router, ShutdownReport};
use crate::event::{Event, EventMeta, EventType, Headers, OwnedEvent};
use crate::handler::{Callable, Context, Handler, HandlerEntry, Policy, SubscribeOptions};
use crate::report::{EmitError, PublishReport};
use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

/// The event bus: dispatches each published event to every handler of its type and of its
/// ancestors, in one global order (see the crate docs), isolating failures.
///
/// Cheap to clone: clones share one bus.
#[derive(Clone)]
pub struct EventBus {
    engine: Arc<Engine>,
}

impl EventBus {
    /// A builder: link-time handlers, state, limits.
    pub fn builder() -> EventBusBuilder {
        EventBusBuilder::default()
    }

    /// A bus with no link-time handlers and default settings; add handlers with
    /// [`subscribe`](Self::subscribe). It takes the `#[upcast]` fns linked into the binary.
    ///
    /// # Panics
    /// When those upcasters do not fit together (a gap, a cycle, two from one type): the
    /// message lists every problem. [`builder`](Self::builder)`().build()` returns them instead.
    pub fn new() -> Self {
        match Self::builder().build() {
            Ok(bus) => bus,
            Err(error) => panic!("{error}"),
        }
    }

    pub(crate) fn from_parts(router: Router, config: Config) -> Self {
        EventBus {
            engine: Engine::new(router, config),
        }
    }

    /// The engine behind this facade (a bridge checks its middleware).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine's publishing handle, owned (the saga outbox relay publishes through it).
    #[cfg_attr(not(feature = "wire"), allow(dead_code))]
    pub(crate) fn follow_ups(&self) -> Arc<dyn crate::handler::FollowUps> {
        self.engine.clone()
    }

    /// Publishes `event` and waits until every handler has run.
    ///
    /// The event passes through the middleware, then the handlers of its type and of all its
    /// ancestors run in dispatch order; a handler that returns `Err`, panics or times out is
    /// recorded in the report and the others still run. After [`shutdown`](Self::shutdown)
    /// the event is refused.
    pub async fn publish<E: Event>(&self, event: E) -> PublishReport {
        // The fast path first, in this future: no nested future is built unless needed. (In
        // a block: the locals' storage ends before the await, so this future is not larger
        // than the run's.)
        let run = {
            let (mut event, mut meta) = (event, EventMeta::root(E::TYPE));
            if let Some(report) = self.engine.publish_now(&mut event, &mut meta) {
                return report;
            }
            self.engine.run(event, meta)
        };
        run.await
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
        let meta = EventMeta::root(E::TYPE).with_headers(headers);
        self.publish_meta(event, meta).await
    }

    /// Publishes `event` on the tokio runtime without waiting for its handlers.
    ///
    /// At most [`max_in_flight`](crate::EventBusBuilder::max_in_flight) emitted events are in
    /// flight at once; past that `emit` fails with
    /// [`EmitErrorKind::Full`](crate::EmitErrorKind::Full) (or use
    /// [`emit_wait`](Self::emit_wait) to wait for room). Failures of the handlers go to the
    /// [`on_failure`](crate::EventBusBuilder::on_failure) hook, or to `tracing` without one.
    ///
    /// An `Ok` is a promise: [`shutdown`](Self::shutdown) does not return before the event's
    /// handlers have run, even when the two race. On error the event was not dispatched, and
    /// is handed back in the [`EmitError`].
    pub fn emit<E: Event>(&self, event: E) -> Result<(), EmitError<E>> {
        self.engine
            .emit(event, EventMeta::root(E::TYPE))
            .map_err(|(kind, event)| EmitError::new(kind, event))
    }

    /// [`emit`](Self::emit) with headers, which handlers read through
    /// [`EventMeta::header`] (through `Context`) and middleware through the envelope.
    pub fn emit_with<E: Event>(&self, event: E, headers: Headers) -> Result<(), EmitError<E>> {
        let meta = EventMeta::root(E::TYPE).with_headers(headers);
        self.engine
            .emit(event, meta)
            .map_err(|(kind, event)| EmitError::new(kind, event))
    }

    /// Like [`emit`](Self::emit), but waits for room when `max_in_flight` events are in flight.
    /// A wait still parked when shutdown begins ends at once with
    /// [`Refusal::ShutDown`](crate::Refusal::ShutDown). Do not call it from a handler (a
    /// handler holding room while waiting for room can deadlock); handlers use
    /// [`Context::emit`](crate::Context::emit).
    pub async fn emit_wait<E: Event>(&self, event: E) -> Result<(), EmitError<E>> {
        self.engine
            .emit_wait(event, EventMeta::root(E::TYPE))
            .await
            .map_err(|(kind, event)| EmitError::new(kind, event))
    }

    /// Stops accepting new events, then waits until all emitted work is done, including
    /// follow-ups that running handlers emit.
    pub async fn shutdown(&self) {
        self.engine.shutdown().await;
    }

    /// Like [`shutdown`](Self::shutdown), but waits at most `deadline`; the report lists the
    /// emitted events that had not finished by then (they go on running in the background).
    pub async fn shutdown_timeout(&self, deadline: Duration) -> ShutdownReport {
        self.engine.shutdown_timeout(deadline).await
    }

    /// Publishes an event received from another process, as if it were published here.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) async fn publish_received(
        &self,
        event: crate::event::AnyEvent,
        meta: EventMeta,
    ) -> PublishReport {
        self.publish_meta(event.0, meta).await
    }

    /// An event with its metadata through the engine: settled at once when it can be,
    /// else run. (`publish` spells this out itself: one nested future less on the hot path,
    /// which measurably moves less state per publish.)
    async fn publish_meta<E: OwnedEvent>(&self, event: E, meta: EventMeta) -> PublishReport {
        let run = {
            let (mut event, mut meta) = (event, meta);
            if let Some(report) = self.engine.publish_now(&mut event, &mut meta) {
                return report;
            }
            self.engine.run(event, meta)
        };
        run.await
    }

    /// Subscribes a handler of `E`: a closure or fn, sync or async (see [`Handler`] for the
    /// parameters it may take: `Context`, `State<T>`, `OwnedContext`). It receives every `E`,
    /// including every event derived from `E`.
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
    /// let _log = bus.subscribe(|e: &Shipped, ctx: Context| println!("{} {}", ctx.event_name(), e.parcel));
    /// let _check = bus.subscribe(|e: &Shipped| if e.parcel == 0 { Err("no parcel") } else { Ok(()) });
    /// let _notify = bus.subscribe(notify);
    /// let _later = bus.subscribe(|e: &Shipped| {
    ///     let parcel = e.parcel; // a closure's future cannot borrow the event: copy what it needs
    ///     async move { println!("parcel {parcel}") }
    /// });
    /// assert_eq!(bus.publish(Shipped { parcel: 7 }).await.handled(), 4);
    /// # }
    /// ```
    ///
    /// A `State<T>` the builder was not given cannot be checked at compile time: such a
    /// handler is logged as an error when subscribed, and each of its calls fails with an error
    /// naming the type (in the report, never in silence).
    #[track_caller]
    pub fn subscribe<E: Event, Args>(&self, handler: impl Handler<E, Args>) -> Subscription {
        self.subscribe_with(SubscribeOptions::new(), handler)
    }

    /// [`subscribe`](Self::subscribe) with a priority, a name and a failure policy.
    #[track_caller]
    pub fn subscribe_with<E: Event, Args, H: Handler<E, Args>>(
        &self,
        options: SubscribeOptions,
        handler: H,
    ) -> Subscription {
        let location = Location::caller();
        let name = options.name.clone().map_or_else(
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
        let callable = match self.engine.states_for(H::declare) {
            Ok(states) => handler.into_callable(states),
            Err(missing) => {
                let message = format!(
                    "handler `{name}` takes `State<{missing}>`, which the builder was not given"
                );
                tracing::error!("{message}");
                Callable::Sync(Box::new(move |_, _| Err(message.clone())))
            }
        };
        self.add::<E>(options, name, callable, location)
    }

    /// The handlers a published `E` would reach, in the order they would run.
    pub fn handlers_for<E: Event>(&self) -> Vec<HandlerInfo> {
        self.engine
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
        self.engine.is_shut_down()
    }

    /// The configured event-storm limit.
    pub fn max_depth(&self) -> u32 {
        self.engine.config.max_depth
    }

    fn add<E: Event>(
        &self,
        options: SubscribeOptions,
        name: String,
        callable: Callable,
        location: &'static Location<'static>,
    ) -> Subscription {
        let id = self.engine.router.add(HandlerEntry {
            id: 0,
            name: name.into(),
            priority: options.priority,
            event: E::TYPE,
            registered: false,
            callable,
            policy: options.policy,
            location: Some((location.file(), location.line())),
            publishes: options.publishes,
            key: None,
        });
        Subscription::new(Arc::downgrade(&self.engine), id)
    }
}

/// A sync handler that reads only its context (a name listener).
#[cfg_attr(not(feature = "wire"), allow(dead_code))]
pub(crate) type ContextFn = dyn for<'a> Fn(Context<'a>) -> Result<(), String> + Send + Sync;

impl EventBus {
    /// Subscribes `call` to `event` under `key`, unless a subscription with that key to that
    /// event exists already. Lives as long as the bus, or until
    /// [`unsubscribe_keyed`](Self::unsubscribe_keyed).
    #[cfg_attr(not(feature = "wire"), allow(dead_code))]
    #[track_caller]
    pub(crate) fn subscribe_keyed(
        &self,
        event: &'static EventType,
        name: String,
        key: &str,
        call: Box<ContextFn>,
    ) {
        let location = Location::caller();
        self.engine.router.add_unless_keyed(HandlerEntry {
            id: 0,
            name: name.into(),
            priority: 0,
            event,
            registered: false,
            callable: Callable::Sync(Box::new(move |_, ctx| call(ctx))),
            policy: Policy::default(),
            location: Some((location.file(), location.line())),
            publishes: Vec::new(),
            key: Some(key.into()),
        });
    }

    /// Removes every subscription made under `key`; `false` when there was none.
    #[cfg_attr(not(feature = "wire"), allow(dead_code))]
    pub(crate) fn unsubscribe_keyed(&self, key: &str) -> bool {
        self.engine.router.remove_keyed(key)
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
            .field("max_depth", &self.engine.config.max_depth)
            .field(
                "middleware",
                &self
                    .engine
                    .layers()
                    .iter()
                    .map(|l| &*l.name)
                    .collect::<Vec<_>>(),
            )
            .field("mode", &self.engine.config.mode)
            .field("shut_down", &self.is_shut_down())
            .field("emitted_in_flight", &self.engine.emitted_in_flight())
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
