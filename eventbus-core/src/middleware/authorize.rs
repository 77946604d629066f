//! [`Authorize`]: a filter built from an async predicate.

use super::BoxFuture;
use super::{Envelope, Middleware, Next};
use crate::PublishReport;
use std::fmt;
use std::future::Future;

/// Lets an event through only when an async check says so; otherwise it is
/// [filtered](Envelope::filter) with the check's reason, and reaches no handler.
///
/// The check gets the envelope and returns a `'static` future: copy what it needs (a header, a
/// user id) before the `async move` block. Scope it to a type with
/// [`middleware_for`](crate::EventBusBuilder::middleware_for).
///
/// ```
/// use eventbus_core::{middleware::Authorize, Event, EventBus};
///
/// #[derive(Event)]
/// struct DeleteAccount { user: u64 }
///
/// async fn may_delete(actor: Option<String>) -> bool {
///     actor.as_deref() == Some("admin")
/// }
///
/// let bus = EventBus::builder()
///     .middleware_for::<DeleteAccount>(Authorize::new(|env| {
///         let actor = env.header("actor").map(str::to_owned);
///         async move {
///             if may_delete(actor).await { Ok(()) } else { Err("actor may not delete accounts".to_owned()) }
///         }
///     }))
///     .build()
///     .unwrap();
/// # drop(bus);
/// ```
pub struct Authorize<F> {
    name: String,
    check: F,
}

impl<F, Fut> Authorize<F>
where
    F: Fn(&Envelope) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    /// A filter named `authorize` that lets an event through when `check` returns `Ok(())`.
    pub fn new(check: F) -> Self {
        Self::named("authorize", check)
    }

    /// [`new`](Self::new) with the name that reports and filtered events show, to tell
    /// several authorization layers apart.
    pub fn named(name: impl Into<String>, check: F) -> Self {
        Authorize {
            name: name.into(),
            check,
        }
    }
}

impl<F, Fut> Middleware for Authorize<F>
where
    F: Fn(&Envelope) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&self, envelope: Envelope, next: Next) -> BoxFuture<'static, PublishReport> {
        let verdict = (self.check)(&envelope);
        Box::pin(async move {
            match verdict.await {
                Ok(()) => next.run(envelope).await,
                Err(reason) => envelope.filter(reason),
            }
        })
    }
}

impl<F> fmt::Debug for Authorize<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorize")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
