//! The middleware pipeline: the [`Middleware`] trait, the [`Envelope`] an event travels in,
//! and [`Next`], the rest of the chain ending in the handlers. Public through
//! [`crate::middleware`], which documents it.

use super::Engine;
use crate::event::{ErasedEvent, Event, EventMeta, EventType, Headers};
use crate::handler::panic_message;
/// The boxed future a [`Middleware`] returns.
pub use crate::handler::BoxFuture;
use crate::report::{FailureKind, HandlerFailure, PublishReport, Refusal};
use futures_util::FutureExt;
use std::any::Any;
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Code that runs around every publish; see the [module docs](crate::middleware).
///
/// Implement it for a type, or build one from an async closure with [`from_fn`].
pub trait Middleware: Any + Send + Sync {
    /// The name used in reports (a filtered event names its filter). Default: the type name.
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }

    /// Handles one event: call `next.run(envelope).await` to go on, or don't (see
    /// [`Envelope::filter`]).
    fn handle(&self, envelope: Envelope, next: Next) -> BoxFuture<'static, PublishReport>;

    /// The sync form of this middleware, if it is one (see [`SyncMiddleware`]).
    #[doc(hidden)]
    fn as_sync(&self) -> Option<&dyn SyncMiddleware> {
        None
    }
}

/// A middleware made from an async closure; see [`from_fn`].
pub struct FnMiddleware<F> {
    name: String,
    f: F,
}

/// Builds a middleware from a closure `|envelope: Envelope, next: Next| async move { .. }`.
pub fn from_fn<F, Fut>(name: impl Into<String>, f: F) -> FnMiddleware<F>
where
    F: Fn(Envelope, Next) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = PublishReport> + Send + 'static,
{
    FnMiddleware {
        name: name.into(),
        f,
    }
}

impl<F, Fut> Middleware for FnMiddleware<F>
where
    F: Fn(Envelope, Next) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = PublishReport> + Send + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&self, envelope: Envelope, next: Next) -> BoxFuture<'static, PublishReport> {
        Box::pin((self.f)(envelope, next))
    }
}

impl<F> fmt::Debug for FnMiddleware<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnMiddleware")
            .field("name", &self.name)
            .finish()
    }
}

/// Middleware that runs synchronously before and after the handlers: no future, no boxing,
/// nothing allocated per event. Filters, enrichers, validators, recorders and auditors fit
/// this form; one that must `.await` (or time the handlers) implements [`Middleware`]. Add
/// it with [`sync`]: `.middleware(middleware::sync(Tenant))`.
///
/// `before` runs in the order the middleware was added; `after` runs in reverse order, for
/// every middleware whose `before` let the event through (also when a later one filtered it,
/// panicked, or a handler failed). A panic in either is recorded in the report as a failure of
/// this middleware; in `before` it also keeps the event from the handlers.
///
/// ```
/// use eventbus_core::middleware::{self, EnvelopeMut, Flow, SyncMiddleware};
/// use eventbus_core::{Context, Event, EventBus, PublishReport};
///
/// #[derive(Event)]
/// struct Signup { email: String }
///
/// /// Stamps the tenant, and drops signups without an email.
/// struct Tenant;
///
/// impl SyncMiddleware for Tenant {
///     fn before(&self, envelope: &mut EnvelopeMut<'_>) -> Flow {
///         envelope.headers_mut().insert("tenant", "acme");
///         match envelope.event::<Signup>() {
///             Some(signup) if signup.email.is_empty() => Flow::filter("no email"),
///             _ => Flow::Continue,
///         }
///     }
///
///     fn after(&self, report: &mut PublishReport) {
///         println!("{} handled {} times", report.event_type().name(), report.handled());
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let bus = EventBus::builder().middleware(middleware::sync(Tenant)).build().unwrap();
/// let _sub = bus.subscribe(|_: &Signup, ctx: Context| assert_eq!(ctx.header("tenant"), Some("acme")));
/// assert!(bus.publish(Signup { email: "ada@example.com".into() }).await.is_ok());
/// let report = bus.publish(Signup { email: String::new() }).await;
/// assert_eq!(report.refusal().unwrap().to_string(), "filtered by middleware `Tenant`: no email");
/// # }
/// ```
pub trait SyncMiddleware: Any + Send + Sync {
    /// The name used in reports. Default: the type name without its module path.
    fn name(&self) -> &str {
        let full = std::any::type_name::<Self>();
        full.rsplit("::").next().unwrap_or(full)
    }

    /// Before the handlers: read or change the event and its headers, or filter it out.
    fn before(&self, envelope: &mut EnvelopeMut<'_>) -> Flow {
        let _ = envelope;
        Flow::Continue
    }

    /// After the handlers, with the report (which it may add to).
    fn after(&self, report: &mut PublishReport) {
        let _ = report;
    }
}

/// What [`SyncMiddleware::before`] decides.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Flow {
    /// Go on to the next middleware and the handlers.
    Continue,
    /// Filter the event out: no handler sees it, and the report's
    /// [`refusal`](PublishReport::refusal) is [`Refusal::Filtered`] with this reason.
    Filter(String),
}

impl Flow {
    /// [`Flow::Filter`] with a reason.
    pub fn filter(reason: impl Into<String>) -> Self {
        Flow::Filter(reason.into())
    }
}

/// The event and its metadata, borrowed by a [`SyncMiddleware`] before the handlers run.
/// Dereferences to [`EventMeta`].
pub struct EnvelopeMut<'a> {
    event: &'a mut dyn ErasedEvent,
    meta: &'a mut EventMeta,
}

impl<'a> EnvelopeMut<'a> {
    pub(crate) fn new(event: &'a mut dyn ErasedEvent, meta: &'a mut EventMeta) -> Self {
        EnvelopeMut { event, meta }
    }

    /// The event's metadata.
    pub fn meta(&self) -> &EventMeta {
        self.meta
    }

    /// The event as `T`, when `T` is its type or an ancestor.
    pub fn event<T: Event>(&self) -> Option<&T> {
        (*self.event).as_type()
    }

    /// The event as a mutable `T`: change it before the handlers see it.
    pub fn event_mut<T: Event>(&mut self) -> Option<&mut T> {
        (*self.event).as_type_mut()
    }

    /// The headers, to change.
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.meta.headers
    }

    /// A clone of the event, when its type is `Clone`.
    pub fn clone_event(&self) -> Option<crate::AnyEvent> {
        self.event.clone_event()
    }
}

impl Deref for EnvelopeMut<'_> {
    type Target = EventMeta;

    fn deref(&self) -> &EventMeta {
        self.meta
    }
}

impl fmt::Debug for EnvelopeMut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvelopeMut")
            .field("meta", &self.meta)
            .finish()
    }
}

/// Turns a [`SyncMiddleware`] into a middleware for the builder:
/// `.middleware(middleware::sync(Tenant))`. The engine calls its hooks directly, with no
/// future or allocation per event.
pub fn sync<M: SyncMiddleware>(middleware: M) -> Hooks<M> {
    Hooks(Arc::new(middleware))
}

/// A [`SyncMiddleware`] as a [`Middleware`]; see [`sync`].
pub struct Hooks<M>(Arc<M>);

impl<M: SyncMiddleware> Hooks<M> {
    /// The middleware inside.
    pub fn get(&self) -> &M {
        &self.0
    }
}

impl<M: SyncMiddleware> Middleware for Hooks<M> {
    fn name(&self) -> &str {
        self.0.name()
    }

    /// What the engine does with the hooks, as a future, for whoever calls `handle` itself.
    fn handle(&self, mut envelope: Envelope, next: Next) -> BoxFuture<'static, PublishReport> {
        let flow = self.0.before(&mut envelope.borrow_mut());
        if let Flow::Filter(reason) = flow {
            return Box::pin(std::future::ready(envelope.filter(reason)));
        }
        let hooks = Arc::clone(&self.0);
        Box::pin(async move {
            let mut report = next.run(envelope).await;
            hooks.after(&mut report);
            report
        })
    }

    fn as_sync(&self) -> Option<&dyn SyncMiddleware> {
        Some(&*self.0)
    }
}

impl<M: fmt::Debug> fmt::Debug for Hooks<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Hooks").field(&self.0).finish()
    }
}

/// One middleware in the chain, with its scope.
pub(crate) struct Layer {
    pub(crate) middleware: Arc<dyn Middleware>,
    pub(crate) name: Arc<str>,
    /// Applies only to this type and the types derived from it.
    pub(crate) scope: Option<&'static EventType>,
    /// A sync middleware (its hooks), asked once: every publish checks it.
    hooks: bool,
}

impl Layer {
    pub(crate) fn new(middleware: Arc<dyn Middleware>, scope: Option<&'static EventType>) -> Self {
        Layer {
            hooks: middleware.as_sync().is_some(),
            name: middleware.name().into(),
            middleware,
            scope,
        }
    }

    fn applies_to(&self, event_type: &'static EventType) -> bool {
        self.scope
            .is_none_or(|scope| event_type.level_of(scope.type_id()).is_some())
    }

    pub(crate) fn is_hooks(&self) -> bool {
        self.hooks
    }

    /// The middleware itself (inside its [`Hooks`] for a sync one), to find one by type.
    pub(crate) fn as_any(&self) -> &dyn Any {
        match self.middleware.as_sync() {
            Some(hooks) => hooks,
            None => &*self.middleware,
        }
    }
}

/// Runs the `before` hooks of the sync layers from `from` on, in order, up to the first
/// around layer (or the end). Returns where it stopped (the around layer, the end, or the
/// layer that ended the run) and, when a hook ended the run (filtered or panicked), the
/// report for it.
pub(crate) fn run_befores(
    layers: &[Layer],
    from: usize,
    envelope: &mut EnvelopeMut<'_>,
) -> (usize, Option<PublishReport>) {
    let event_type = envelope.meta.event_type;
    for (index, layer) in layers.iter().enumerate().skip(from) {
        if !layer.applies_to(event_type) {
            continue;
        }
        if !layer.hooks {
            return (index, None);
        }
        let Some(hooks) = layer.middleware.as_sync() else {
            unreachable!("a hooks layer is a sync middleware");
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| hooks.before(envelope))) {
            Ok(Flow::Continue) => {}
            Ok(Flow::Filter(reason)) => {
                let refusal = Refusal::Filtered {
                    middleware: layer.name.to_string(),
                    reason,
                };
                return (index, Some(PublishReport::refused(envelope.meta, refusal)));
            }
            Err(panic) => {
                let mut report = PublishReport::new(envelope.meta);
                report.finish(envelope.meta);
                record_panic(&mut report, &layer.name, event_type, &*panic);
                return (index, Some(report));
            }
        }
    }
    (layers.len(), None)
}

/// Runs the `after` hooks of the sync layers in `layers[from..to]` that apply, in reverse.
pub(crate) fn run_afters(layers: &[Layer], from: usize, to: usize, report: &mut PublishReport) {
    let event_type = report.event_type();
    for layer in layers[from..to].iter().rev().filter(|layer| layer.hooks) {
        let Some(hooks) = layer.middleware.as_sync() else {
            unreachable!("a hooks layer is a sync middleware");
        };
        if !layer.applies_to(event_type) {
            continue;
        }
        if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| hooks.after(report))) {
            record_panic(report, &layer.name, event_type, &*panic);
        }
    }
}

fn record_panic(
    report: &mut PublishReport,
    name: &Arc<str>,
    event_type: &'static EventType,
    panic: &(dyn Any + Send),
) {
    let message = panic_message(panic);
    tracing::error!(middleware = %name, event = event_type.name(), %message, "middleware panicked");
    report.record_middleware_failure(HandlerFailure::middleware_failed(
        name,
        FailureKind::Panic(message),
    ));
}

/// An event on its way through the middleware chain: the event itself and its metadata.
pub struct Envelope {
    pub(crate) event: Box<dyn ErasedEvent>,
    pub(crate) meta: EventMeta,
    /// The middleware currently holding the envelope, for [`filter`](Self::filter).
    current: Option<Arc<str>>,
    /// This run through the chain: every report made for it carries the same number, so a
    /// report a middleware made up (or kept from another event) is told apart.
    run: u64,
}

impl Envelope {
    pub(crate) fn new(event: Box<dyn ErasedEvent>, meta: EventMeta) -> Self {
        static RUNS: AtomicU64 = AtomicU64::new(1);
        Envelope {
            event,
            meta,
            current: None,
            run: RUNS.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The envelope as the hooks of a [`SyncMiddleware`] take it.
    pub fn borrow_mut(&mut self) -> EnvelopeMut<'_> {
        EnvelopeMut::new(&mut *self.event, &mut self.meta)
    }

    /// The event's metadata. `Envelope` also dereferences to it, so
    /// `envelope.correlation_id()` is [`EventMeta::correlation_id`].
    pub fn meta(&self) -> &EventMeta {
        &self.meta
    }

    /// The event as `T`, when `T` is its type or an ancestor.
    pub fn event<T: Event>(&self) -> Option<&T> {
        self.event.as_type()
    }

    /// The event as a mutable `T`: change it before the handlers see it.
    pub fn event_mut<T: Event>(&mut self) -> Option<&mut T> {
        self.event.as_type_mut()
    }

    /// The headers, to change: handlers read them through
    /// [`EventMeta::header`](crate::EventMeta::header).
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.meta.headers
    }

    /// A clone of the event, when its type is `Clone`.
    pub fn clone_event(&self) -> Option<crate::AnyEvent> {
        self.event.clone_event()
    }

    /// Filters the event out: no handler sees it, and the report's
    /// [`refusal`](PublishReport::refusal) is [`Refusal::Filtered`], naming this middleware.
    pub fn filter(self, reason: impl Into<String>) -> PublishReport {
        let middleware = self.current.as_deref().unwrap_or("(unknown)").to_owned();
        self.refuse(Refusal::Filtered {
            middleware,
            reason: reason.into(),
        })
    }

    fn refuse(&self, refusal: Refusal) -> PublishReport {
        let mut report = PublishReport::refused(&self.meta, refusal);
        report.run = self.run;
        report
    }
}

impl Deref for Envelope {
    type Target = EventMeta;

    fn deref(&self) -> &EventMeta {
        &self.meta
    }
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("meta", &self.meta)
            .finish()
    }
}

/// The rest of the middleware chain, ending in the handlers.
pub struct Next {
    engine: Arc<Engine>,
    index: usize,
}

impl Next {
    pub(crate) fn start(engine: Arc<Engine>) -> Self {
        Next { engine, index: 0 }
    }

    /// Runs the rest of the chain and the handlers.
    pub fn run(self, mut envelope: Envelope) -> BoxFuture<'static, PublishReport> {
        Box::pin(async move {
            let layers = self.engine.layers();
            let run = envelope.run;
            // Sync layers up to the next around layer run here, without a future of their own.
            let (stop, ended) = {
                let Envelope { event, meta, .. } = &mut envelope;
                run_befores(
                    layers,
                    self.index,
                    &mut EnvelopeMut::new(&mut **event, meta),
                )
            };
            let mut report = match ended {
                Some(report) => report,
                // The handlers: inline when they can be; otherwise the full dispatch, boxed so
                // that its large future does not weigh on every layer's future.
                None if stop == layers.len() => {
                    match self
                        .engine
                        .dispatch_if_inline(&*envelope.event, &envelope.meta)
                    {
                        Some(report) => report,
                        None => {
                            Box::pin(self.engine.dispatch(&*envelope.event, &envelope.meta)).await
                        }
                    }
                }
                None => self.around(stop, envelope).await,
            };
            run_afters(layers, self.index, stop, &mut report);
            report.run = run;
            report
        })
    }

    /// Hands the envelope to the around middleware at `index`, with the rest of the chain.
    async fn around(&self, index: usize, mut envelope: Envelope) -> PublishReport {
        let layer = &self.engine.layers()[index];
        let middleware = &layer.middleware;
        let event_type = envelope.meta.event_type;
        // The id is built only if this layer fails to hand back the event's report.
        let (run, event_id, name) = (envelope.run, envelope.meta.id_later(), &layer.name);
        envelope.current = Some(Arc::clone(name));
        let next = Next {
            engine: Arc::clone(&self.engine),
            index: index + 1,
        };
        let outcome = match std::panic::catch_unwind(AssertUnwindSafe(|| {
            middleware.handle(envelope, next)
        })) {
            Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
            Err(panic) => Err(panic),
        };
        match outcome {
            Ok(report) if report.run == run => report,
            Ok(_) => {
                tracing::error!(middleware = %name, event = event_type.name(), "middleware returned a report that was not this event's; the event reached no handler");
                PublishReport::refused_by_id(
                    event_type,
                    event_id.get(),
                    Refusal::Swallowed {
                        middleware: name.to_string(),
                    },
                )
            }
            Err(panic) => {
                let mut report = PublishReport::for_id(event_type, event_id.get());
                record_panic(&mut report, name, event_type, &*panic);
                report
            }
        }
    }
}

impl fmt::Debug for Next {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Next").field("index", &self.index).finish()
    }
}
