//! Shared state for handlers ([`State`]) and the parameters a handler may take besides its event.

use super::{Context, OwnedContext};
use std::any::{Any, TypeId};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// Shared state given to the bus with [`EventBusBuilder::state`](crate::EventBusBuilder::state)
/// and taken by handlers as a parameter.
///
/// The bus keeps one `Arc<T>` per type; each handler call gets a cheap clone of it.
/// [`build`](crate::EventBusBuilder::build) fails, naming the handler and the type, when a
/// registered handler asks for a `State<T>` the builder was not given.
///
/// ```
/// use eventbus_core::{handler, Event, EventBus, State};
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// #[derive(Event)]
/// struct Paid { cents: u64 }
///
/// #[derive(Default)]
/// struct Ledger { total: AtomicU64 }
///
/// #[handler]
/// fn book(e: &Paid, ledger: State<Ledger>) {
///     ledger.total.fetch_add(e.cents, Ordering::Relaxed);
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let ledger = std::sync::Arc::new(Ledger::default());
/// let bus = EventBus::builder()
///     .with_registered_handlers()
///     .state_arc(ledger.clone())
///     .build()
///     .unwrap();
/// bus.publish(Paid { cents: 250 }).await;
/// assert_eq!(ledger.total.load(Ordering::Relaxed), 250);
/// # }
/// ```
pub struct State<T: ?Sized>(pub Arc<T>);

impl<T: ?Sized> State<T> {
    /// The shared `Arc`.
    pub fn into_inner(self) -> Arc<T> {
        self.0
    }
}

impl<T: ?Sized> Deref for State<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: ?Sized> Clone for State<T> {
    fn clone(&self) -> Self {
        State(self.0.clone())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for State<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("State").field(&self.0).finish()
    }
}

/// One state value as the bus stores it.
pub type SharedState = Arc<dyn Any + Send + Sync>;

/// A state type a handler needs, recorded at registration so `build()` can check it.
#[derive(Clone, Copy, Debug)]
pub struct StateKey {
    pub(crate) type_id: TypeId,
    pub(crate) type_name: &'static str,
}

impl StateKey {
    fn of<T: Any>() -> Self {
        StateKey {
            type_id: TypeId::of::<T>(),
            type_name: std::any::type_name::<T>(),
        }
    }
}

/// The state types one handler needs, in parameter order.
pub type StateKeys = Vec<StateKey>;

/// Hands the resolved state values to a handler's parameters, in the order they were declared.
#[derive(Debug)]
pub struct StateCursor<'a> {
    states: std::slice::Iter<'a, SharedState>,
}

impl<'a> StateCursor<'a> {
    #[doc(hidden)]
    pub fn new(states: &'a [SharedState]) -> Self {
        StateCursor {
            states: states.iter(),
        }
    }

    fn next<T: Any + Send + Sync>(&mut self) -> Arc<T> {
        let state = self
            .states
            .next()
            .expect("the bus resolves one state per declared State<T> parameter");
        Arc::clone(state)
            .downcast::<T>()
            .unwrap_or_else(|_| unreachable!("state resolved by TypeId"))
    }
}

/// A parameter of a handler other than its event: [`Context`], [`OwnedContext`] or
/// [`State<T>`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a handler parameter",
    label = "not `&Event`, `Context`, `OwnedContext` or `State<T>`",
    note = "a handler takes its event by reference (`e: &OrderPlaced`), and optionally `ctx: Context` (or `OwnedContext`) and shared state `State<T>`"
)]
pub trait HandlerParam<'a>: Sized {
    /// Records the state this parameter needs, if any.
    fn declare(states: &mut StateKeys);
    /// Produces the parameter for one call.
    fn extract(ctx: Context<'a>, states: &mut StateCursor<'_>) -> Self;
}

impl<'a> HandlerParam<'a> for Context<'a> {
    fn declare(_: &mut StateKeys) {}
    fn extract(ctx: Context<'a>, _: &mut StateCursor<'_>) -> Self {
        ctx
    }
}

/// A handler parameter owned outright (`State<T>`, `OwnedContext`): what may follow the event
/// and its optional `Context` in a closure. (`Context` borrows, so it has a place of its own.)
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a parameter here",
    label = "not `State<T>` or `OwnedContext`",
    note = "a handler takes `&Event`, then optionally `Context`, then any of `State<T>` and `OwnedContext`"
)]
pub trait OwnedParam: for<'a> HandlerParam<'a> + Send + 'static {}

impl OwnedParam for OwnedContext {}
impl<T: Any + Send + Sync> OwnedParam for State<T> {}

/// A `'static` context: for an async closure, whose future cannot borrow, to publish after an
/// `.await`. It costs one allocation per call (the metadata is shared, not borrowed).
impl<'a> HandlerParam<'a> for OwnedContext {
    fn declare(_: &mut StateKeys) {}
    fn extract(ctx: Context<'a>, _: &mut StateCursor<'_>) -> Self {
        ctx.detach()
    }
}

impl<'a, T: Any + Send + Sync> HandlerParam<'a> for State<T> {
    fn declare(states: &mut StateKeys) {
        states.push(StateKey::of::<T>());
    }
    fn extract(_: Context<'a>, states: &mut StateCursor<'_>) -> Self {
        State(states.next::<T>())
    }
}
