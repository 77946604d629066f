//! Typed domain events for Rust.
//!
//! Events are plain structs with `#[derive(Event)]`. A derived event extends its parent by
//! holding it in a `#[event(base)]` field, and a handler of a parent type receives every event
//! derived from it. Handlers are `fn`s or `async fn`s marked `#[handler]`, registered at link
//! time, or closures subscribed at run time. The [`EventBus`] runs on tokio, isolates failing
//! and panicking handlers, and reports what happened to every publish.
//!
//! ```
//! use eventbus_core::{handler, Context, Event, EventBus, State};
//!
//! #[derive(Event, Clone, Debug)]
//! pub struct DomainEvent { pub at_ms: u64 }
//!
//! #[derive(Event, Clone, Debug)]
//! #[event(extends = DomainEvent)]
//! pub struct OrderEvent { #[event(base)] pub base: DomainEvent, pub order_id: String }
//!
//! #[derive(Event, Clone, Debug)]
//! #[event(extends = OrderEvent, name = "orders.placed", version = 1)]
//! pub struct OrderPlaced { #[event(base)] pub base: OrderEvent, pub amount_cents: u64 }
//!
//! #[handler(priority = 100)]
//! fn validate(e: &OrderPlaced) -> Result<(), String> {
//!     if e.amount_cents == 0 { Err("empty order".into()) } else { Ok(()) }
//! }
//!
//! #[handler]
//! async fn audit(e: &DomainEvent, ctx: Context) {
//!     println!("{} at {}", ctx.event_name(), e.at_ms);
//! }
//!
//! #[derive(Default)]
//! pub struct Mailer;
//!
//! #[handler(priority = -10)]
//! async fn confirm(e: &OrderPlaced, _mailer: State<Mailer>) -> Result<(), std::io::Error> {
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let bus = EventBus::builder()
//!     .with_registered_handlers()
//!     .state(Mailer)
//!     .build()?;
//! let placed = OrderPlaced {
//!     base: OrderEvent { base: DomainEvent { at_ms: 1 }, order_id: "A-1".into() },
//!     amount_cents: 4200,
//! };
//! let report = bus.publish(placed).await; // validate, audit, confirm
//! assert!(report.is_ok() && report.handled() == 3);
//! # Ok(()) }
//! ```
//!
//! # Dispatch order
//! Publishing an event runs, one after another, the handlers of its type and of every ancestor
//! in one global order:
//! 1. higher `priority` first (default 0, may be negative);
//! 2. then handlers of the more derived type first;
//! 3. then `#[handler]` fns before runtime subscriptions;
//! 4. then `#[handler]` fns by full path name, subscriptions in the order they were made.
//!
//! The order never depends on link order. [`EventBus::handlers_for`] lists it.
//!
//! # Handlers
//! A `#[handler]` is a free `fn` or `async fn` that takes the event by reference (`&E`), and
//! optionally a [`Context`] and any number of [`State<T>`], in any order. It returns `()` or
//! `Result<(), E>` for any `E: Display`. `#[handler(priority = 10, name = "..")]` sets its
//! priority and the name used in reports (default: its full path). Misuse is a compile error.
//!
//! # Errors
//! A handler that returns `Err` or panics is recorded in the [`PublishReport`] with its name
//! and message; every other handler still runs. (Panics are caught with `catch_unwind`, so
//! this needs the default `panic = "unwind"`.) A handler may publish follow-up events through
//! its [`Context`]; a chain deeper than [`EventBusBuilder::max_depth`] is refused, naming the
//! chain, so an event storm ends instead of overflowing or hanging.
//!
//! # Pipeline
//! [`middleware`] runs around every publish (filter, transform, wrap); handlers get timeouts,
//! retries and error callbacks; [`testing`] has a recorder for tests.
//!
//! # Distributed
//! `#[event(distributed)]` types can leave the process as CloudEvents ([`wire`]). A
//! [`bridge::Bridge`] shares them between services over a transport: broadcast (at-most-once)
//! or durable, one share of the work per service (at-least-once). With the `redis` feature
//! over Redis (Pub/Sub and Streams), with the `rabbitmq` feature over RabbitMQ (topic
//! exchanges routed by lineage, quorum queues); another broker plugs in through
//! [`bridge::Transport`].
//!
//! The guide in the repository's `docs/` folder covers all of this at length.
//!
//! # Cargo features
//!
//! | feature | adds |
//! |---|---|
//! | `wire` (default) | [`wire`]: `#[event(distributed)]`, the CloudEvents codec (serde, serde_json, time) |
//! | `redis` | `redis::RedisTransport`: the bridge over Redis Pub/Sub and Streams (implies `wire`) |
//! | `rabbitmq` | `rabbitmq::RabbitTransport`: the bridge over RabbitMQ, through lapin (implies `wire`) |
//! | `metrics` | `middleware::Metrics`, through the `metrics` facade |
//! | `postgres` | `saga::PostgresStore`: saga instances in PostgreSQL, through sqlx (implies `wire`) |
//! | `schema` | `wire::schema`: the JSON Schema of every distributed event version, through schemars (implies `wire`) |
//! | `opentelemetry` | W3C trace context across the bridge: the sender's span travels as `traceparent`, the receiver's handlers run in a child of it (implies `wire`) |

#![warn(missing_docs, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// Generated code names `::eventbus_core`, which must also resolve inside this crate's tests.
extern crate self as eventbus_core;

// The layers, bottom up: event, report, handler, engine, bus; then middleware, testing,
// wire, saga, bridge, and the transports redis and rabbitmq. Each imports only from layers below it (tests/architecture.rs checks).
#[cfg(feature = "wire")]
pub mod bridge;
mod bus;
mod engine;
mod event;
mod handler;
pub mod middleware;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
#[cfg(feature = "redis")]
pub mod redis;
mod report;
#[cfg(feature = "wire")]
pub mod saga;
pub mod testing;
pub mod topology;
#[cfg(feature = "wire")]
pub mod wire;

pub use bus::{BuildError, BuildProblem, EventBus, EventBusBuilder, HandlerInfo, Subscription};
pub use engine::{DispatchMode, ShutdownReport, UnfinishedEvent};
pub use event::{
    AnyEvent, Event, EventExt, EventId, EventMeta, EventType, Headers, ParseEventIdError,
};
pub use handler::{Context, Handler, IntoHandlerResult, OwnedContext, State, SubscribeOptions};
pub use report::{
    EmitError, EmitErrorKind, FailureKind, HandlerFailure, PublishError, PublishReport, Refusal,
};

/// Derives [`Event`] for a struct; see [`Event`] for the attributes.
pub use eventbus_derive::Event;

/// Registers a `fn` or `async fn` as a handler at link time.
///
/// ```
/// use eventbus_core::{handler, Context, Event, State};
///
/// #[derive(Event)]
/// struct Paid { cents: u64 }
/// struct Ledger;
///
/// #[handler(priority = 10, name = "billing.book")]
/// async fn book(e: &Paid, ctx: Context<'_>, ledger: State<Ledger>) -> Result<(), String> {
///     Ok(())
/// }
/// ```
///
/// Arguments, all optional:
///
/// | argument | meaning |
/// |---|---|
/// | `priority = 10` | higher runs first (default 0, may be negative) |
/// | `name = "billing.book"` | the name in reports (default: the fn's full path) |
/// | `timeout_ms = 500` | cancel an async handler running longer, reported as timed out |
/// | `retry = 3` | try a failing handler up to 3 more times |
/// | `backoff_ms = 100` | wait before the first retry, doubled each time (default 50) |
/// | `on_error = path` | a `fn(&HandlerFailure, Context)` called after the last attempt |
/// | `publishes = [OrderShipped, ..]` | the events it publishes, for [`EventBus::topology`] and its [check](topology::Topology::check) |
/// | `crate = my_framework::eventbus` | the path of eventbus-core, for a crate that reaches it through a re-export |
///
/// The fn stays an ordinary fn you can call directly.
/// Buses take registered handlers through
/// [`EventBusBuilder::with_registered_handlers`] or
/// [`EventBusBuilder::with_registered_handlers_from`].
pub use eventbus_derive::handler;

/// Declares a saga: its steps are the methods of this `impl` block marked `#[start(by =
/// field)]` (may create the instance) or `#[step(by = field)]` (on an existing one), each
/// taking `&mut self`, the event, and `&mut SagaContext`, and returning `()` or
/// `Result<(), E: Display>`. See [`saga`](mod@saga) for the model and the guarantees.
///
/// | argument | meaning |
/// |---|---|
/// | `key = String` | the type of the key (required); each step's `by` field must have it |
/// | `name = "fulfillment"` | the name instances are stored under (default: the type's name) |
/// | `crate = my_framework::eventbus` | the path of eventbus-core, for a crate that reaches it through a re-export |
///
/// The state type must be `Default + Serialize + Deserialize`. The saga is registered at link
/// time ([`SagasBuilder::with_registered`](saga::SagasBuilder::with_registered)) and can be
/// added by type ([`SagasBuilder::saga`](saga::SagasBuilder::saga)).
#[cfg(feature = "wire")]
pub use eventbus_derive::saga;

/// Registers an upcaster at link time: a fn from one version of an event to the next.
///
/// Several versions of one event live side by side as Rust types sharing one `name`, each with
/// its `version`. An upcaster turns version `n` into version `n + 1`; every bus composes them
/// into chains, so a handler of the newest version receives every older one too, upcast, when
/// it is published here and when it arrives from the wire. A handler of an old version still
/// receives that version, as it was published, and handlers of a common parent type receive
/// the event once. [`EventBusBuilder::build`] checks the chains (no gap, no step that skips a
/// version, no two upcasters from one type, no cycle) and names the types of each problem.
///
/// ```
/// use eventbus_core::{upcast, Event, EventBus};
///
/// #[derive(Event)]
/// #[event(name = "orders.placed", version = 1)]
/// struct OrderPlacedV1 { order_id: String, cents: u64 }
///
/// #[derive(Event)]
/// #[event(name = "orders.placed", version = 2)]
/// struct OrderPlaced { order_id: String, cents: u64, currency: String }
///
/// #[upcast]
/// fn placed_v1_to_v2(old: &OrderPlacedV1) -> OrderPlaced {
///     OrderPlaced { order_id: old.order_id.clone(), cents: old.cents, currency: "EUR".into() }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let bus = EventBus::new();
/// let _sub = bus.subscribe(|e: &OrderPlaced| assert_eq!(e.currency, "EUR"));
/// let report = bus.publish(OrderPlacedV1 { order_id: "A-1".into(), cents: 5 }).await;
/// assert_eq!(report.handled(), 1);
/// assert_eq!(report.event_type().version(), 1); // reported as published
/// # }
/// ```
///
/// The fn takes the old version by reference and returns the next one; it stays an ordinary
/// fn. `#[upcast(crate = path)]` names eventbus-core for a crate that reaches it through a
/// re-export. Closures can be added with
/// [`EventBusBuilder::upcaster`](crate::EventBusBuilder::upcaster). The guide's
/// `docs/versioning.md` walks through a migration.
pub use eventbus_derive::upcast;

/// Links crates that hold `#[handler]`s into the application, so that
/// [`with_registered_handlers`](EventBusBuilder::with_registered_handlers) finds them.
///
/// A dependency the application names only in `Cargo.toml` is dropped by the linker, with the
/// handlers registered in it (in debug, release and LTO builds alike). Write this once at the
/// root of the application, naming each such crate by its crate name (`_`, not `-`):
///
/// ```ignore
/// eventbus_core::link!(orders_domain, billing_handlers);
/// ```
///
/// It expands to `use ::orders_domain as _;` for each crate, which is the whole trick: any
/// `use` of the crate keeps it linked. Building a bus that asks for registered handlers when
/// none is linked fails with [`BuildProblem::NoRegisteredHandlers`], which says this.
#[macro_export]
macro_rules! link {
    ($($krate:ident),+ $(,)?) => {
        $(
            #[allow(unused_imports)]
            use ::$krate as _;
        )+
    };
}

/// Not public API: used by code that `#[derive(Event)]` and `#[handler]` generate.
#[doc(hidden)]
pub mod __private {
    pub use crate::engine::{upcast_then, InlineUpcaster};
    pub use crate::event::{
        event_part, upcast_erased, AnyEvent, CloneIfClone, CloneProbe, CloneUnavailable, EventPart,
        EventProbe, EventType, IsEvent, NotEvent, UpcastFn, Upcasted, UpcasterRegistration,
    };
    pub use crate::handler::{
        BoxFuture, EventRegistration, HandlerFn, HandlerParam, HandlerPolicy, HandlerRegistration,
        HandlerResult, IntoHandlerResult, SharedState, StateCursor, StateKeys,
    };
    #[cfg(feature = "wire")]
    pub use crate::wire::{
        decode_event, encode_event, HasSchema, NoSchema, SchemaProbe, WireRegistration,
    };
    #[cfg(not(feature = "wire"))]
    pub use no_wire::{
        decode_event, encode_event, HasSchema, NoSchema, SchemaProbe, WireRegistration,
    };

    /// What `#[event(distributed)]` expands to without the `wire` feature: one clear error.
    #[cfg(not(feature = "wire"))]
    mod no_wire {
        #[diagnostic::on_unimplemented(
            message = "`#[event(distributed)]` needs the `wire` feature of eventbus-core",
            label = "this event cannot travel: the `wire` feature is off",
            note = "enable it (it is on by default): `eventbus-core = {{ version = \"..\", features = [\"wire\"] }}`"
        )]
        pub trait WireFeature {}

        /// Stands in for the wire registration, which never happens without the feature.
        #[derive(Debug)]
        pub struct WireRegistration;

        impl WireRegistration {
            pub const fn new<A: Copy, B: Copy, C: Copy>(
                _: &'static crate::EventType,
                _: A,
                _: B,
                _: C,
            ) -> Self {
                WireRegistration
            }
        }

        /// Stands in for the schema probe: nothing to find without the feature.
        #[derive(Debug)]
        pub struct SchemaProbe<T>(core::marker::PhantomData<T>);

        #[allow(clippy::new_without_default)] // built by generated code only
        impl<T> SchemaProbe<T> {
            pub const fn new() -> Self {
                SchemaProbe(core::marker::PhantomData)
            }
        }

        pub trait HasSchema {}

        pub trait NoSchema {
            fn schema(&self) -> Option<fn()> {
                None
            }
        }

        impl<T> NoSchema for &&SchemaProbe<T> {}

        inventory::collect!(WireRegistration);

        pub fn encode_event<T: WireFeature>() {}
        pub fn decode_event<T: WireFeature>() {}
    }
    pub use inventory;
    /// What a schema is made of: JSON with the `wire` feature, nothing without it.
    #[cfg(feature = "wire")]
    pub type SchemaValue = serde_json::Value;
    #[cfg(not(feature = "wire"))]
    pub type SchemaValue = ();

    /// `TypeId::of` as a fn pointer, for `EventType`.
    pub fn type_id<T: 'static>() -> std::any::TypeId {
        std::any::TypeId::of::<T>()
    }

    /// Checked for every field of an event, at the field: events cross threads and tasks.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be a field of an event: it is not `Send + Sync + 'static`",
        label = "an event's fields must be `Send + Sync + 'static`",
        note = "events are shared by reference between handlers on any thread and task, so every field must be `Send + Sync + 'static`: use `Arc` for `Rc`, `Mutex` or atomics for `Cell`/`RefCell`, owned data for borrows"
    )]
    pub trait EventField {}

    // One auto-trait bound that holds exactly when `T: Send + Sync`, so that a field lacking
    // both is one error, not two.
    impl<T: ?Sized + 'static> EventField for T where SendAndSync<T>: Send {}

    /// `Send` exactly when `T` is `Send` (the first part) and `Sync` (`&T` is `Send` just then).
    #[allow(missing_debug_implementations)]
    pub struct SendAndSync<T: ?Sized + 'static>(
        std::marker::PhantomData<T>,
        std::marker::PhantomData<&'static T>,
    );

    /// Names a field type so that [`EventField`] is checked at its span.
    pub const fn assert_event_field<T: ?Sized + EventField>() {}

    /// `self` as the type-erased part handed to handlers (the cast sits here, in one generic
    /// place, so an event's own mistakes are not reported again inside its impl).
    #[inline]
    pub fn as_part<E: crate::Event>(event: &E) -> &crate::__private::EventPart {
        event
    }

    /// [`as_part`], mutably.
    #[inline]
    pub fn as_part_mut<E: crate::Event>(event: &mut E) -> &mut crate::__private::EventPart {
        event
    }

    /// `type_name` as a fn pointer, for `EventType` (it is not a `const fn`).
    pub fn type_name<T: ?Sized>() -> &'static str {
        std::any::type_name::<T>()
    }
}
