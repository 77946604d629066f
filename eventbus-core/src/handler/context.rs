//! [`Context`]: what a handler knows about the event it is handling, and how it publishes
//! follow-up events.

use super::BoxFuture;
use crate::event::{ErasedEvent, Event, EventMeta, Headers};
use crate::report::{EmitError, EmitErrorKind, PublishReport};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// What a handler's [`Context`] may ask of the engine that runs it: follow-up events, and no
/// more. The engine implements it; this layer knows nothing else of the engine.
pub(crate) trait FollowUps: Send + Sync {
    /// Publishes a follow-up of `parent` and waits for its handlers.
    fn publish<'a>(
        &'a self,
        parent: &'a EventMeta,
        event: Box<dyn ErasedEvent>,
        headers: Headers,
    ) -> BoxFuture<'a, PublishReport>;

    /// Emits a follow-up of `parent`; on refusal, why, and the event back.
    fn emit(
        &self,
        parent: &EventMeta,
        event: Box<dyn ErasedEvent>,
        headers: Headers,
    ) -> Result<(), (EmitErrorKind, Box<dyn ErasedEvent>)>;

    /// Publishes an event with the metadata given (its id among it), and waits for its
    /// handlers; refused once the bus is shut down.
    #[cfg_attr(not(feature = "wire"), allow(dead_code))]
    fn publish_as(
        &self,
        meta: EventMeta,
        event: Box<dyn ErasedEvent>,
    ) -> BoxFuture<'_, PublishReport>;

    /// The same handle, owned: for a context that outlives the handler call.
    fn to_arc(&self) -> Arc<dyn FollowUps>;
}

/// Emits `event` as a follow-up of `parent`, handing it back typed on refusal.
fn emit_follow_up<E: Event>(
    follow_ups: &dyn FollowUps,
    parent: &EventMeta,
    event: E,
    headers: Headers,
) -> Result<(), EmitError<E>> {
    follow_ups
        .emit(parent, Box::new(event), headers)
        .map_err(|(kind, event)| {
            let event = event
                .into_any()
                .downcast::<E>()
                .expect("the engine hands back the event it was given");
            EmitError::new(kind, *event)
        })
}

/// What a handler may know about the event it handles, and its way to publish follow-ups.
///
/// Take it as a handler parameter (`ctx: Context`). It is cheap to copy and valid for the
/// duration of the handler call.
///
/// ```
/// use eventbus_core::{handler, Context, Event};
///
/// #[derive(Event)]
/// struct DomainEvent { at_ms: u64 }
///
/// #[derive(Event)]
/// #[event(extends = DomainEvent)]
/// struct UserDeleted { #[event(base)] base: DomainEvent, user_id: u64 }
///
/// #[derive(Event)]
/// struct PurgeRequested { user_id: u64 }
///
/// #[handler]
/// async fn audit(e: &DomainEvent, ctx: Context) {
///     // The concrete event is still there: the `isinstance` of this world.
///     if let Some(deleted) = ctx.downcast_ref::<UserDeleted>() {
///         // Follow-ups share the correlation id and record this event as their cause.
///         let report = ctx.publish(PurgeRequested { user_id: deleted.user_id }).await;
///         assert_eq!(report.handled(), 0);
///     }
///     println!("{} #{} at {}", ctx.event_name(), ctx.event_id(), e.at_ms);
/// }
/// ```
#[derive(Clone, Copy)]
pub struct Context<'a> {
    follow_ups: &'a dyn FollowUps,
    meta: &'a EventMeta,
    event: &'a dyn ErasedEvent,
    handler: &'a str,
}

impl<'a> Context<'a> {
    pub(crate) fn new(
        follow_ups: &'a dyn FollowUps,
        meta: &'a EventMeta,
        event: &'a dyn ErasedEvent,
        handler: &'a str,
    ) -> Self {
        Context {
            follow_ups,
            meta,
            event,
            handler,
        }
    }

    /// The event's metadata, for as long as the handler runs. `Context` also dereferences to
    /// it, so `ctx.event_name()` is [`EventMeta::event_name`].
    pub fn meta(&self) -> &'a EventMeta {
        self.meta
    }

    /// The name of the handler being called.
    pub fn handler_name(&self) -> &'a str {
        self.handler
    }

    /// The published event as `T`, when `T` is its concrete type or one of its ancestors.
    pub fn downcast_ref<T: Event>(&self) -> Option<&'a T> {
        self.event.as_type()
    }

    /// Publishes a follow-up event and waits for its handlers. It inherits the correlation id
    /// and headers, is caused by this event, and is one level deeper: past
    /// [`max_depth`](crate::EventBusBuilder::max_depth) it is refused (see
    /// [`Refusal::TooDeep`](crate::Refusal::TooDeep)).
    pub async fn publish<E: Event>(&self, event: E) -> PublishReport {
        self.publish_with(event, Headers::new()).await
    }

    /// [`publish`](Self::publish) with headers set over the inherited ones.
    pub async fn publish_with<E: Event>(&self, event: E, headers: Headers) -> PublishReport {
        self.follow_ups
            .publish(self.meta, Box::new(event), headers)
            .await
    }

    /// Emits a follow-up event without waiting (see [`EventBus::emit`](crate::EventBus::emit)); same lineage rules as
    /// [`publish`](Self::publish).
    ///
    /// While the bus shuts down, a follow-up of an *emitted* event is accepted: it is part of
    /// the work [`EventBus::shutdown`](crate::EventBus::shutdown) waits for. A follow-up of anything else (a `publish`,
    /// whose caller awaits it, or an event from a bridge) is refused with
    /// [`Refusal::ShutDown`](crate::Refusal::ShutDown) like a plain emit, since nothing would
    /// wait for it.
    pub fn emit<E: Event>(&self, event: E) -> Result<(), EmitError<E>> {
        self.emit_with(event, Headers::new())
    }

    /// [`emit`](Self::emit) with headers set over the inherited ones.
    pub fn emit_with<E: Event>(&self, event: E, headers: Headers) -> Result<(), EmitError<E>> {
        emit_follow_up(self.follow_ups, self.meta, event, headers)
    }

    /// [`publish`](Self::publish) of an event already boxed (sagas publish what a step left).
    #[cfg_attr(not(feature = "wire"), allow(dead_code))]
    pub(crate) fn publish_boxed(
        &self,
        event: Box<dyn ErasedEvent>,
    ) -> BoxFuture<'a, PublishReport> {
        self.follow_ups.publish(self.meta, event, Headers::new())
    }

    /// The event itself, type-erased (a name listener writes it as JSON).
    #[cfg_attr(not(feature = "wire"), allow(dead_code))]
    pub(crate) fn erased_event(&self) -> &'a dyn ErasedEvent {
        self.event
    }

    /// The engine's publishing handle (sagas publish what they committed with its own ids).
    #[cfg_attr(not(feature = "wire"), allow(dead_code))]
    pub(crate) fn follow_ups(&self) -> &'a dyn FollowUps {
        self.follow_ups
    }

    /// This context as an owned, `'static` value: for an async closure that publishes after
    /// an `.await` (a closure's future cannot borrow its arguments), or work that goes on
    /// after the handler returned.
    ///
    /// Its follow-ups have the same lineage. One difference: while the bus shuts down they
    /// are refused even for emitted work, since nothing ties a detached context to the work
    /// `shutdown` waits for.
    ///
    /// ```
    /// use eventbus_core::{Context, Event, EventBus};
    ///
    /// #[derive(Event)]
    /// struct Ping;
    /// #[derive(Event)]
    /// struct Pong;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let bus = EventBus::new();
    /// let _ping = bus.subscribe(|_: &Ping, ctx: Context<'_>| {
    ///     let ctx = ctx.detach();
    ///     async move {
    ///         tokio::task::yield_now().await; // stands in for real work
    ///         ctx.publish(Pong).await.into_result().map(drop)
    ///     }
    /// });
    /// let _pong = bus.subscribe(|_: &Pong, ctx: Context| assert_eq!(ctx.depth(), 1));
    /// assert!(bus.publish(Ping).await.is_ok());
    /// # }
    /// ```
    pub fn detach(&self) -> OwnedContext {
        let mut meta = self.meta.clone();
        meta.awaited_by_shutdown = false;
        OwnedContext {
            follow_ups: self.follow_ups.to_arc(),
            meta,
            handler: self.handler.into(),
        }
    }
}

/// A [`Context`] that owns what it holds; see [`Context::detach`]. It reads the event's
/// metadata (it dereferences to [`EventMeta`]) and publishes follow-ups, but no longer sees
/// the event itself.
#[derive(Clone)]
pub struct OwnedContext {
    follow_ups: Arc<dyn FollowUps>,
    meta: EventMeta,
    handler: Arc<str>,
}

impl OwnedContext {
    /// The event's metadata.
    pub fn meta(&self) -> &EventMeta {
        &self.meta
    }

    /// The name of the handler it was detached from.
    pub fn handler_name(&self) -> &str {
        &self.handler
    }

    /// [`Context::publish`].
    pub async fn publish<E: Event>(&self, event: E) -> PublishReport {
        self.publish_with(event, Headers::new()).await
    }

    /// [`Context::publish_with`].
    pub async fn publish_with<E: Event>(&self, event: E, headers: Headers) -> PublishReport {
        self.follow_ups
            .publish(&self.meta, Box::new(event), headers)
            .await
    }

    /// [`Context::emit`].
    pub fn emit<E: Event>(&self, event: E) -> Result<(), EmitError<E>> {
        self.emit_with(event, Headers::new())
    }

    /// [`Context::emit_with`].
    pub fn emit_with<E: Event>(&self, event: E, headers: Headers) -> Result<(), EmitError<E>> {
        emit_follow_up(&*self.follow_ups, &self.meta, event, headers)
    }

    /// [`Context::publish_boxed`].
    #[cfg_attr(not(feature = "wire"), allow(dead_code))]
    pub(crate) fn publish_boxed(
        &self,
        event: Box<dyn ErasedEvent>,
    ) -> BoxFuture<'_, PublishReport> {
        self.follow_ups.publish(&self.meta, event, Headers::new())
    }
}

impl Deref for OwnedContext {
    type Target = EventMeta;

    fn deref(&self) -> &EventMeta {
        &self.meta
    }
}

impl fmt::Debug for OwnedContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedContext")
            .field("meta", &self.meta)
            .field("handler", &self.handler)
            .finish()
    }
}

impl Deref for Context<'_> {
    type Target = EventMeta;

    fn deref(&self) -> &EventMeta {
        self.meta
    }
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("meta", self.meta)
            .field("handler", &self.handler)
            .finish()
    }
}
