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

/// One middleware in the chain, with its scope.
pub(crate) struct Layer {
    pub(crate) middleware: Arc<dyn Middleware>,
    pub(crate) name: Arc<str>,
    /// Applies only to this type and the types derived from it.
    pub(crate) scope: Option<&'static EventType>,
}

impl Layer {
    pub(crate) fn new(middleware: Arc<dyn Middleware>, scope: Option<&'static EventType>) -> Self {
        Layer {
            name: middleware.name().into(),
            middleware,
            scope,
        }
    }

    fn applies_to(&self, event_type: &'static EventType) -> bool {
        self.scope
            .is_none_or(|scope| event_type.level_of(scope.type_id()).is_some())
    }
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
            let event_type = envelope.meta.event_type;
            let Some((index, layer)) = layers
                .iter()
                .enumerate()
                .skip(self.index)
                .find(|(_, layer)| layer.applies_to(event_type))
            else {
                let mut report = self.engine.dispatch(&*envelope.event, &envelope.meta).await;
                report.run = envelope.run;
                return report;
            };
            let (run, event_id, name) = (
                envelope.run,
                envelope.meta.event_id(),
                Arc::clone(&layer.name),
            );
            envelope.current = Some(Arc::clone(&name));
            let next = Next {
                engine: Arc::clone(&self.engine),
                index: index + 1,
            };
            let middleware = &layer.middleware;
            let outcome = match std::panic::catch_unwind(AssertUnwindSafe(|| {
                middleware.handle(envelope, next)
            })) {
                Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
                Err(panic) => Err(panic),
            };
            let mut report = match outcome {
                Ok(report) if report.run == run => return report,
                Ok(_) => {
                    tracing::error!(middleware = %name, event = event_type.name(), "middleware returned a report that was not this event's; the event reached no handler");
                    PublishReport::refused_by_id(
                        event_type,
                        event_id,
                        Refusal::Swallowed {
                            middleware: name.to_string(),
                        },
                    )
                }
                Err(panic) => {
                    let message = panic_message(panic.as_ref());
                    tracing::error!(middleware = %name, event = event_type.name(), %message, "middleware panicked");
                    let mut report = PublishReport::for_id(event_type, event_id);
                    report.record_middleware_failure(HandlerFailure::middleware_failed(
                        &name,
                        FailureKind::Panic(message),
                    ));
                    report
                }
            };
            report.run = run;
            report
        })
    }
}

impl fmt::Debug for Next {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Next").field("index", &self.index).finish()
    }
}
