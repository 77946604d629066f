//! The handler layer: what a handler is once registered (a name, a priority, the event type it
//! handles, a type-erased callable and its policy), the traits that turn fns and closures into
//! one, the parameters it may take ([`Context`], [`State`]) and link-time registration.

mod context;
mod in_place;
mod registry;
mod state;

pub(crate) use context::FollowUps;
pub use context::{Context, OwnedContext};
pub(crate) use in_place::{call_in_place, FutureSlot, InPlace};
pub(crate) use registry::{all_events, all_handlers, Selection};
pub use registry::{EventRegistration, HandlerRegistration};

pub use state::{HandlerParam, OwnedParam, SharedState, State, StateCursor, StateKeys};

use crate::event::{event_part, Event, EventPart, EventType};
use crate::report::{FailureKind, HandlerFailure};
use futures_util::FutureExt;
use std::borrow::Cow;
use std::fmt::{self, Display};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// What one handler call returns once normalised: `Err` carries the error's `Display` text.
pub type HandlerResult = Result<(), String>;

/// A boxed, sendable future borrowing for `'a`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A return type a handler may have: `()` or `Result<(), E>` with `E: Display` (which includes
/// every `std::error::Error`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a valid handler return type",
    label = "handlers return `()` or `Result<(), E>`",
    note = "return `()` or `Result<(), E>` where `E` implements `Display` (every `std::error::Error` does)"
)]
pub trait IntoHandlerResult {
    /// Normalises the value.
    fn into_handler_result(self) -> HandlerResult;
}

impl IntoHandlerResult for () {
    fn into_handler_result(self) -> HandlerResult {
        Ok(())
    }
}

impl<E: Display> IntoHandlerResult for Result<(), E> {
    fn into_handler_result(self) -> HandlerResult {
        self.map_err(|e| e.to_string())
    }
}

/// The generated entry point of a `#[handler]` fn.
#[derive(Clone, Copy)]
pub enum HandlerFn {
    /// A plain `fn`.
    Sync(for<'a, 's> fn(&'a EventPart, Context<'a>, &'s [SharedState]) -> HandlerResult),
    /// An `async fn` (its future never borrows the state: that is taken before).
    Async(
        for<'a, 's> fn(
            &'a EventPart,
            Context<'a>,
            &'s [SharedState],
        ) -> BoxFuture<'a, HandlerResult>,
    ),
}

impl fmt::Debug for HandlerFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandlerFn::Sync(_) => "HandlerFn::Sync",
            HandlerFn::Async(_) => "HandlerFn::Async",
        })
    }
}

type SyncCallFn = dyn for<'a> Fn(&'a EventPart, Context<'a>) -> HandlerResult + Send + Sync;

/// A handler ready to be called: `#[handler]` fns and runtime subscriptions alike, with the
/// state they take already resolved.
#[doc(hidden)]
pub enum Callable {
    /// A sync handler.
    Sync(Box<SyncCallFn>),
    /// An async handler, whose future can be built in place.
    Async(Box<dyn InPlace>),
}

impl fmt::Debug for Callable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Callable::Sync(_) => "Callable::Sync",
            Callable::Async(_) => "Callable::Async",
        })
    }
}

impl Callable {
    /// A `#[handler]` fn with the states it declared.
    pub(crate) fn of_fn(f: HandlerFn, states: Box<[SharedState]>) -> Self {
        match f {
            HandlerFn::Sync(f) => Callable::Sync(Box::new(move |part, ctx| f(part, ctx, &states))),
            HandlerFn::Async(f) => Callable::Async(Box::new(in_place::AsyncFn { f, states })),
        }
    }

    pub(crate) fn is_async(&self) -> bool {
        matches!(self, Callable::Async(_))
    }

    /// Calls a sync handler, turning an `Err` or a panic into a [`FailureKind`]; `None` for
    /// an async one.
    pub(crate) fn call_sync(
        &self,
        part: &EventPart,
        ctx: Context<'_>,
    ) -> Option<Result<(), FailureKind>> {
        // An async handler is not called at all, so it cannot panic here.
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.call_sync_unguarded(part, ctx))) {
            Ok(outcome) => outcome.map(|result| to_failure(Ok(result))),
            Err(panic) => Some(Err(panicked(panic))),
        }
    }

    /// Calls a sync handler and lets a panic through (the caller catches it); `None` for an
    /// async one.
    pub(crate) fn call_sync_unguarded(
        &self,
        part: &EventPart,
        ctx: Context<'_>,
    ) -> Option<HandlerResult> {
        match self {
            Callable::Sync(f) => Some(f(part, ctx)),
            Callable::Async(_) => None,
        }
    }

    /// Calls any handler, turning an `Err` or a panic (sync or async) into a [`FailureKind`].
    pub(crate) async fn call<'a>(
        &'a self,
        part: &'a EventPart,
        ctx: Context<'a>,
    ) -> Result<(), FailureKind> {
        match self {
            Callable::Async(f) => to_failure(catch_unwind_async(|| f.boxed(part, ctx)).await),
            sync => sync.call_sync(part, ctx).expect("not async"),
        }
    }
}

pub(crate) fn to_failure(outcome: Result<HandlerResult, Panic>) -> Result<(), FailureKind> {
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => Err(FailureKind::Error(message)),
        Err(panic) => Err(panicked(panic)),
    }
}

/// The failure of a handler that panicked.
pub(crate) fn panicked(panic: Panic) -> FailureKind {
    FailureKind::Panic(panic_message(panic.as_ref()))
}

pub(crate) type Panic = Box<dyn std::any::Any + Send>;

/// Catches a panic while creating the future as well as while polling it.
async fn catch_unwind_async<'a>(
    make: impl FnOnce() -> BoxFuture<'a, HandlerResult>,
) -> Result<HandlerResult, Panic> {
    let future = std::panic::catch_unwind(AssertUnwindSafe(make))?;
    AssertUnwindSafe(future).catch_unwind().await
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// One registered handler.
pub(crate) struct HandlerEntry {
    /// Assigned by the router.
    pub(crate) id: u64,
    pub(crate) name: Arc<str>,
    pub(crate) priority: i32,
    pub(crate) event: &'static EventType,
    /// A `#[handler]` fn (as opposed to a runtime subscription).
    pub(crate) registered: bool,
    pub(crate) callable: Callable,
    pub(crate) policy: Policy,
    /// Where it was defined or subscribed (`file`, `line`).
    pub(crate) location: Option<(&'static str, u32)>,
    /// The events it declares it publishes (for the topology).
    pub(crate) publishes: Vec<&'static EventType>,
    /// Subscriptions that must not be made twice (a name listener under one pattern) share
    /// a key; `None` for the others.
    pub(crate) key: Option<Arc<str>>,
}

/// What to do when a handler is slow or fails.
#[derive(Clone, Default)]
pub(crate) struct Policy {
    /// `None`: the bus default, if any.
    pub(crate) timeout: Option<Duration>,
    pub(crate) retries: u32,
    /// Wait before the first retry, doubled before each further one.
    pub(crate) backoff: Duration,
    pub(crate) on_error: Option<ErrorCallback>,
}

/// Called with a handler's failure (after its last attempt) and the event's context.
pub(crate) type ErrorCallback = Arc<dyn for<'a> Fn(&HandlerFailure, Context<'a>) + Send + Sync>;

/// The policy of a `#[handler]` fn, as its attribute gave it (const, for link-time registration).
#[derive(Clone, Copy, Debug, Default)]
pub struct HandlerPolicy {
    timeout_ms: Option<u64>,
    retries: u32,
    backoff_ms: Option<u64>,
    on_error: Option<for<'a> fn(&HandlerFailure, Context<'a>)>,
}

impl HandlerPolicy {
    #[doc(hidden)]
    pub const fn new() -> Self {
        HandlerPolicy {
            timeout_ms: None,
            retries: 0,
            backoff_ms: None,
            on_error: None,
        }
    }

    #[doc(hidden)]
    pub const fn timeout_ms(mut self, ms: u64) -> Self {
        self.timeout_ms = Some(ms);
        self
    }

    #[doc(hidden)]
    pub const fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    #[doc(hidden)]
    pub const fn backoff_ms(mut self, ms: u64) -> Self {
        self.backoff_ms = Some(ms);
        self
    }

    #[doc(hidden)]
    pub const fn on_error(mut self, f: for<'a> fn(&HandlerFailure, Context<'a>)) -> Self {
        self.on_error = Some(f);
        self
    }

    pub(crate) fn to_policy(self) -> Policy {
        Policy {
            timeout: self.timeout_ms.map(Duration::from_millis),
            retries: self.retries,
            backoff: self
                .backoff_ms
                .map_or(DEFAULT_BACKOFF, Duration::from_millis),
            on_error: self.on_error.map(|f| Arc::new(f) as ErrorCallback),
        }
    }
}

/// The wait before a first retry when none is given.
pub(crate) const DEFAULT_BACKOFF: Duration = Duration::from_millis(50);

impl fmt::Debug for HandlerEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerEntry")
            .field("name", &self.name)
            .field("priority", &self.priority)
            .field("event", &self.event.name())
            .finish()
    }
}

/// Options for a runtime subscription ([`EventBus::subscribe_with`](crate::EventBus::subscribe_with)).
///
/// ```
/// use eventbus_core::SubscribeOptions;
/// use std::time::Duration;
///
/// let options = SubscribeOptions::new()
///     .priority(50)
///     .name("fraud-check")
///     .timeout(Duration::from_secs(2))
///     .retry(3, Duration::from_millis(100))
///     .on_error(|failure, ctx| eprintln!("{} failed on {}: {failure}", failure.handler(), ctx.event_name()));
/// # let _ = options;
/// ```
#[derive(Clone, Default)]
pub struct SubscribeOptions {
    pub(crate) priority: i32,
    pub(crate) name: Option<Cow<'static, str>>,
    pub(crate) policy: Policy,
    pub(crate) publishes: Vec<&'static EventType>,
}

impl SubscribeOptions {
    /// Priority 0, named after where `subscribe` was called, no timeout or retry.
    pub fn new() -> Self {
        SubscribeOptions {
            policy: Policy {
                backoff: DEFAULT_BACKOFF,
                ..Policy::default()
            },
            ..Self::default()
        }
    }

    /// Higher runs first; see the dispatch order in the crate docs.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// The name used in reports and errors.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Cancels an async handler still running after `timeout` and reports it as timed out
    /// (a sync handler cannot be interrupted). Overrides the bus default.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.policy.timeout = Some(timeout);
        self
    }

    /// Tries a failing handler (error, panic or time-out) again up to `retries` more times,
    /// waiting `backoff` before the first retry and twice as long before each further one.
    pub fn retry(mut self, retries: u32, backoff: Duration) -> Self {
        self.policy.retries = retries;
        self.policy.backoff = backoff;
        self
    }

    /// Called with the failure after the handler's last attempt, and the event's context. A
    /// panic in it is logged and contained.
    pub fn on_error(
        mut self,
        callback: impl for<'a> Fn(&HandlerFailure, Context<'a>) + Send + Sync + 'static,
    ) -> Self {
        self.policy.on_error = Some(Arc::new(callback));
        self
    }

    /// Declares that the handler publishes `E` (through its `Context`), for the bus's
    /// [`topology`](crate::EventBus::topology) and its [`check`](crate::topology::Topology::check).
    /// Declare each event it publishes with one call.
    pub fn publishes<E: crate::Event>(mut self) -> Self {
        self.publishes.push(E::TYPE);
        self
    }
}

impl fmt::Debug for SubscribeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscribeOptions")
            .field("priority", &self.priority)
            .field("name", &self.name)
            .field("timeout", &self.policy.timeout)
            .field("retries", &self.policy.retries)
            .field("backoff", &self.policy.backoff)
            .field("on_error", &self.policy.on_error.is_some())
            .finish()
    }
}

/// A handler of `E` that [`EventBus::subscribe`](crate::EventBus::subscribe) takes: a fn or
/// closure, sync or async, whose first parameter is the event (`&E`), optionally followed by
/// [`Context`], then up to three parameters taken from the bus: [`State<T>`] (state given to
/// the builder) and [`OwnedContext`] (a `'static` context, for an async closure that publishes
/// after an `.await`). It returns `()` or `Result<(), E: Display>`, or a future of one.
///
/// `Args` tells the shapes apart and is always inferred. The same parameters work for
/// `#[handler]` fns, in any order there.
///
/// An `async fn` may borrow the event and its `Context` across `.await`; a closure's future
/// cannot borrow its arguments (a Rust limitation of closures), so it copies what it needs
/// from the event and takes an `OwnedContext`.
///
/// ```
/// use eventbus_core::{Context, Event, EventBus, OwnedContext, State};
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// #[derive(Event)]
/// struct Paid { cents: u64 }
/// #[derive(Event)]
/// struct Receipt { cents: u64 }
///
/// #[derive(Default)]
/// struct Ledger { total: AtomicU64 }
///
/// async fn audit(e: &Paid, ctx: Context<'_>) {
///     tokio::task::yield_now().await;
///     println!("{} cents, event {}", e.cents, ctx.event_id()); // borrowed after an await
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let bus = EventBus::builder().state(Ledger::default()).build().unwrap();
/// // sync, with state
/// let _a = bus.subscribe(|e: &Paid, ledger: State<Ledger>| {
///     ledger.total.fetch_add(e.cents, Ordering::Relaxed);
/// });
/// // async closure that publishes after an await
/// let _b = bus.subscribe(|e: &Paid, ctx: OwnedContext| {
///     let cents = e.cents;
///     async move {
///         tokio::task::yield_now().await;
///         ctx.publish(Receipt { cents }).await.into_result().map(drop)
///     }
/// });
/// // async fn borrowing its arguments
/// let _c = bus.subscribe(audit);
/// assert_eq!(bus.publish(Paid { cents: 250 }).await.handled(), 3);
/// # }
/// ```
#[diagnostic::on_unimplemented(
    message = "this cannot be subscribed as a handler of `{E}`",
    label = "not a handler",
    note = "a handler takes `&{E}`, optionally `Context` right after it, then up to three of `State<T>` and `OwnedContext`; it returns `()`, `Result<(), E: Display>` or a `Send + 'static` future of one (an `async fn` may borrow its arguments)"
)]
pub trait Handler<E, Args>: Send + Sync + 'static {
    /// The state types it takes, in order.
    #[doc(hidden)]
    fn declare(states: &mut StateKeys);

    /// Its callable, given the states it declared, in order.
    #[doc(hidden)]
    fn into_callable(self, states: Box<[SharedState]>) -> Callable;
}

/// The shapes of [`Handler`]: sync or async, with or without `Context` after the event.
#[doc(hidden)]
pub mod shape {
    /// `Fn(&E, ..) -> R`.
    #[derive(Debug)]
    pub enum Sync {}
    /// `Fn(&E, Context, ..) -> R`.
    #[derive(Debug)]
    pub enum SyncWithContext {}
    /// `Fn(&E, ..) -> impl Future`.
    #[derive(Debug)]
    pub enum Async {}
    /// `Fn(&E, Context, ..) -> impl Future`.
    #[derive(Debug)]
    pub enum AsyncWithContext {}
}

/// An async handler for one borrow `'a` of the event and context: how an `async fn` whose
/// future borrows its arguments is named for every `'a` at once.
#[doc(hidden)]
pub trait AsyncCall<'a, E: 'a, Args>: Send + Sync + 'static {
    type Future: Future<Output = HandlerResult> + Send + 'a;
    fn call(&self, event: &'a E, ctx: Context<'a>, states: &mut StateCursor<'_>) -> Self::Future;
}

/// An async handler's future with its output normalised.
type Normalised<Fut> = futures_util::future::Map<Fut, fn(<Fut as Future>::Output) -> HandlerResult>;

fn normalise<Fut: Future<Output: IntoHandlerResult>>(future: Fut) -> Normalised<Fut> {
    future.map(IntoHandlerResult::into_handler_result as fn(Fut::Output) -> HandlerResult)
}

/// Implements [`Handler`] (and [`AsyncCall`]) for the four shapes with the given extra
/// parameters, each taken from the bus (`for<'a> HandlerParam<'a>`: owned, like `State<T>`).
macro_rules! shapes {
    ($($param:ident),*) => {
        #[allow(non_snake_case, unused_variables, unused_mut)]
        impl<E: Event, F, R, $($param,)*> Handler<E, (shape::Sync, $($param,)*)> for F
        where
            F: Fn(&E, $($param,)*) -> R + Send + Sync + 'static,
            R: IntoHandlerResult,
            $($param: OwnedParam,)*
        {
            fn declare(#[allow(unused_variables)] states: &mut StateKeys) {
                $(<$param as HandlerParam<'static>>::declare(states);)*
            }

            fn into_callable(self, states: Box<[SharedState]>) -> Callable {
                Callable::Sync(Box::new(move |part, ctx| {
                    let mut cursor = StateCursor::new(&states);
                    $(let $param = <$param as HandlerParam<'_>>::extract(ctx, &mut cursor);)*
                    self(event_part::<E>(part), $($param,)*).into_handler_result()
                }))
            }
        }

        #[allow(non_snake_case, unused_variables, unused_mut)]
        impl<E: Event, F, R, $($param,)*> Handler<E, (shape::SyncWithContext, $($param,)*)> for F
        where
            F: for<'a> Fn(&E, Context<'a>, $($param,)*) -> R + Send + Sync + 'static,
            R: IntoHandlerResult,
            $($param: OwnedParam,)*
        {
            fn declare(#[allow(unused_variables)] states: &mut StateKeys) {
                $(<$param as HandlerParam<'static>>::declare(states);)*
            }

            fn into_callable(self, states: Box<[SharedState]>) -> Callable {
                Callable::Sync(Box::new(move |part, ctx| {
                    let mut cursor = StateCursor::new(&states);
                    $(let $param = <$param as HandlerParam<'_>>::extract(ctx, &mut cursor);)*
                    self(event_part::<E>(part), ctx, $($param,)*).into_handler_result()
                }))
            }
        }

        #[allow(non_snake_case, unused_variables, unused_mut)]
        impl<'a, E: 'a, F, Fut, $($param,)*> AsyncCall<'a, E, (shape::Async, $($param,)*)> for F
        where
            F: Fn(&'a E, $($param,)*) -> Fut + Send + Sync + 'static,
            Fut: Future<Output: IntoHandlerResult> + Send + 'a,
            $($param: OwnedParam,)*
        {
            type Future = Normalised<Fut>;
            fn call(&self, event: &'a E, ctx: Context<'a>, cursor: &mut StateCursor<'_>) -> Self::Future {
                $(let $param = <$param as HandlerParam<'a>>::extract(ctx, cursor);)*
                normalise(self(event, $($param,)*))
            }
        }

        #[allow(non_snake_case, unused_variables, unused_mut)]
        impl<'a, E: 'a, F, Fut, $($param,)*> AsyncCall<'a, E, (shape::AsyncWithContext, $($param,)*)> for F
        where
            F: Fn(&'a E, Context<'a>, $($param,)*) -> Fut + Send + Sync + 'static,
            Fut: Future<Output: IntoHandlerResult> + Send + 'a,
            $($param: OwnedParam,)*
        {
            type Future = Normalised<Fut>;
            fn call(&self, event: &'a E, ctx: Context<'a>, cursor: &mut StateCursor<'_>) -> Self::Future {
                $(let $param = <$param as HandlerParam<'a>>::extract(ctx, cursor);)*
                normalise(self(event, ctx, $($param,)*))
            }
        }

        impl<E: Event, F, $($param,)*> Handler<E, (shape::Async, $($param,)*)> for F
        where
            F: for<'a> AsyncCall<'a, E, (shape::Async, $($param,)*)>,
            $($param: OwnedParam,)*
        {
            fn declare(#[allow(unused_variables)] states: &mut StateKeys) {
                $(<$param as HandlerParam<'static>>::declare(states);)*
            }

            fn into_callable(self, states: Box<[SharedState]>) -> Callable {
                async_callable::<E, (shape::Async, $($param,)*), F>(self, states)
            }
        }

        impl<E: Event, F, $($param,)*> Handler<E, (shape::AsyncWithContext, $($param,)*)> for F
        where
            F: for<'a> AsyncCall<'a, E, (shape::AsyncWithContext, $($param,)*)>,
            $($param: OwnedParam,)*
        {
            fn declare(#[allow(unused_variables)] states: &mut StateKeys) {
                $(<$param as HandlerParam<'static>>::declare(states);)*
            }

            fn into_callable(self, states: Box<[SharedState]>) -> Callable {
                async_callable::<E, (shape::AsyncWithContext, $($param,)*), F>(self, states)
            }
        }
    };
}

shapes!();
shapes!(P1);
shapes!(P1, P2);
shapes!(P1, P2, P3);

fn async_callable<E: Event, Args: 'static, H>(handler: H, states: Box<[SharedState]>) -> Callable
where
    H: for<'a> AsyncCall<'a, E, Args>,
{
    Callable::Async(Box::new(in_place::AsyncClosure::<E, Args, H>::new(
        handler, states,
    )))
}
