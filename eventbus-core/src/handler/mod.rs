//! The handler layer: what a handler is once registered (a name, a priority, the event type it
//! handles, a type-erased callable and its policy), the traits that turn fns and closures into
//! one, the parameters it may take ([`Context`], [`State`]) and link-time registration.

mod context;
mod registry;
mod state;

pub(crate) use context::FollowUps;
pub use context::{Context, OwnedContext};
pub(crate) use registry::{all_handlers, Selection};
pub use registry::{EventRegistration, HandlerRegistration};

pub use state::{HandlerParam, SharedState, State, StateCursor, StateKeys};

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
    Sync(for<'a> fn(&'a EventPart, Context<'a>, &'a [SharedState]) -> HandlerResult),
    /// An `async fn`.
    Async(
        for<'a> fn(&'a EventPart, Context<'a>, &'a [SharedState]) -> BoxFuture<'a, HandlerResult>,
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

type SyncCall = dyn for<'a> Fn(&'a EventPart, Context<'a>) -> HandlerResult + Send + Sync;
type AsyncCall =
    dyn for<'a> Fn(&'a EventPart, Context<'a>) -> BoxFuture<'a, HandlerResult> + Send + Sync;

/// A handler ready to be called: link-time fns and runtime closures alike.
pub(crate) enum Callable {
    /// A `#[handler]` fn with the state it declared, resolved by the builder.
    Fn {
        f: HandlerFn,
        states: Box<[SharedState]>,
    },
    SyncClosure(Box<SyncCall>),
    AsyncClosure(Box<AsyncCall>),
}

impl Callable {
    pub(crate) fn is_async(&self) -> bool {
        matches!(
            self,
            Callable::AsyncClosure(_)
                | Callable::Fn {
                    f: HandlerFn::Async(_),
                    ..
                }
        )
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
            Callable::Fn {
                f: HandlerFn::Sync(f),
                states,
            } => Some(f(part, ctx, states)),
            Callable::SyncClosure(f) => Some(f(part, ctx)),
            _ => None,
        }
    }

    /// Calls any handler, turning an `Err` or a panic (sync or async) into a [`FailureKind`].
    pub(crate) async fn call<'a>(
        &'a self,
        part: &'a EventPart,
        ctx: Context<'a>,
    ) -> Result<(), FailureKind> {
        let outcome = match self {
            Callable::Fn {
                f: HandlerFn::Async(f),
                states,
            } => catch_unwind_async(|| f(part, ctx, states)).await,
            Callable::AsyncClosure(f) => catch_unwind_async(|| f(part, ctx)).await,
            sync => return sync.call_sync(part, ctx).expect("not async"),
        };
        to_failure(outcome)
    }
}

fn to_failure(outcome: Result<HandlerResult, Panic>) -> Result<(), FailureKind> {
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

/// A closure or fn usable with [`EventBus::subscribe`](crate::EventBus::subscribe):
/// `Fn(&E)` or `Fn(&E, Context)`, returning `()` or `Result<(), E: Display>`.
///
/// `Args` only tells the two shapes apart: `()` for `Fn(&E)`, `(Context,)` for `Fn(&E, Context)`.
// A label of our own keeps the closure's type, which holds the source path, out of the label:
// rustc moves a label that got too long, so the message would depend on where the crate lives.
#[diagnostic::on_unimplemented(
    message = "this cannot be subscribed as a synchronous handler of `{E}`",
    label = "not a synchronous handler",
    note = "use a closure or fn taking `&{E}` (and optionally `Context`) returning `()` or `Result<(), E>`; for async code use `subscribe_async`"
)]
pub trait SyncHandler<E, Args>: Send + Sync + 'static {
    #[doc(hidden)]
    fn call(&self, event: &E, ctx: Context<'_>) -> HandlerResult;
}

impl<E, F, R> SyncHandler<E, ()> for F
where
    F: Fn(&E) -> R + Send + Sync + 'static,
    R: IntoHandlerResult,
{
    fn call(&self, event: &E, _: Context<'_>) -> HandlerResult {
        self(event).into_handler_result()
    }
}

impl<E, F, R> SyncHandler<E, (Context<'static>,)> for F
where
    F: for<'a> Fn(&E, Context<'a>) -> R + Send + Sync + 'static,
    R: IntoHandlerResult,
{
    fn call(&self, event: &E, ctx: Context<'_>) -> HandlerResult {
        self(event, ctx).into_handler_result()
    }
}

/// An async fn or closure usable with
/// [`EventBus::subscribe_async`](crate::EventBus::subscribe_async): `async fn(&E)` or
/// `async fn(&E, Context)`, or a closure returning a `Send + 'static` future.
///
/// An `async fn` may borrow the event across `.await`; a closure's future cannot (a Rust
/// limitation of closures returning borrowing futures), so clone what it needs first.
#[diagnostic::on_unimplemented(
    message = "this cannot be subscribed as an async handler of `{E}`",
    label = "not an async handler",
    note = "use an `async fn` taking `&{E}` (and optionally `Context`), or a closure returning a `Send + 'static` future"
)]
pub trait AsyncHandler<'a, E: 'a, Args>: Send + Sync + 'static {
    #[doc(hidden)]
    type Future: Future<Output = HandlerResult> + Send + 'a;
    #[doc(hidden)]
    fn call(&self, event: &'a E, ctx: Context<'a>) -> Self::Future;
}

/// An async handler's future with its output normalised.
type Normalised<Fut> = futures_util::future::Map<Fut, fn(<Fut as Future>::Output) -> HandlerResult>;

fn normalise<Fut: Future<Output: IntoHandlerResult>>(future: Fut) -> Normalised<Fut> {
    future.map(IntoHandlerResult::into_handler_result as fn(Fut::Output) -> HandlerResult)
}

impl<'a, E: 'a, F, Fut> AsyncHandler<'a, E, ()> for F
where
    F: Fn(&'a E) -> Fut + Send + Sync + 'static,
    Fut: Future<Output: IntoHandlerResult> + Send + 'a,
{
    type Future = Normalised<Fut>;
    fn call(&self, event: &'a E, _: Context<'a>) -> Self::Future {
        normalise(self(event))
    }
}

impl<'a, E: 'a, F, Fut> AsyncHandler<'a, E, (Context<'static>,)> for F
where
    F: Fn(&'a E, Context<'a>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output: IntoHandlerResult> + Send + 'a,
{
    type Future = Normalised<Fut>;
    fn call(&self, event: &'a E, ctx: Context<'a>) -> Self::Future {
        normalise(self(event, ctx))
    }
}

pub(crate) fn sync_callable<E: Event, Args>(handler: impl SyncHandler<E, Args>) -> Callable {
    Callable::SyncClosure(Box::new(move |part, ctx| {
        handler.call(event_part::<E>(part), ctx)
    }))
}

pub(crate) fn async_callable<E: Event, Args, H>(handler: H) -> Callable
where
    H: for<'a> AsyncHandler<'a, E, Args>,
{
    Callable::AsyncClosure(Box::new(move |part, ctx| {
        Box::pin(handler.call(event_part::<E>(part), ctx))
    }))
}
