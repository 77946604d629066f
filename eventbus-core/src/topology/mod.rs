//! What a bus holds, as data: its events, handlers, middleware, upcasters, sagas and routes to
//! the wire, from [`EventBus::topology`](crate::EventBus::topology). It renders as JSON (with
//! the `wire` feature), as Markdown tables and as a Mermaid diagram, and
//! [`check`](Topology::check)s that every event published is handled and every handler's event
//! is published somewhere.

mod check;
mod render;

pub use check::{TopologyError, TopologyErrors};

use crate::event::EventType;

/// What a bus holds; see the [module docs](self).
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "wire", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Topology {
    /// Every event type the bus deals with (handled, published, upcast or routed) and their
    /// ancestors, sorted by name and version.
    pub events: Vec<EventNode>,
    /// Every handler, sorted by event, then in dispatch order.
    pub handlers: Vec<HandlerNode>,
    /// The middleware, in the order it runs.
    pub middleware: Vec<MiddlewareNode>,
    /// The upcasters between versions, sorted by name.
    pub upcasters: Vec<UpcasterNode>,
    /// The sagas running on the bus.
    pub sagas: Vec<SagaNode>,
    /// Routes between the bus and the wire (bridges started on it).
    pub routes: Vec<RouteNode>,
    /// Who publishes what, as declared (`#[handler(publishes = [..])]`,
    /// `SubscribeOptions::publishes`, `EventBusBuilder::publisher`) or known (events that
    /// arrive from the wire).
    pub publishers: Vec<PublisherNode>,
}

/// An event type.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "wire", derive(serde::Serialize))]
#[non_exhaustive]
pub struct EventNode {
    /// Its stable name.
    pub name: String,
    /// Its version.
    pub version: u32,
    /// The Rust type.
    pub rust_name: String,
    /// Its ancestors' names, nearest first.
    pub ancestors: Vec<String>,
    #[cfg_attr(feature = "wire", serde(skip))]
    pub(crate) ty: &'static EventType,
}

impl EventNode {
    pub(crate) fn of(ty: &'static EventType) -> Self {
        EventNode {
            name: ty.name().to_owned(),
            version: ty.version(),
            rust_name: ty.rust_name().to_owned(),
            ancestors: ty.lineage().skip(1).map(|t| t.name().to_owned()).collect(),
            ty,
        }
    }
}

/// A handler.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "wire", derive(serde::Serialize))]
#[non_exhaustive]
pub struct HandlerNode {
    /// Its name (a `#[handler]` fn's path or `name = ".."`; a subscription's name).
    pub name: String,
    /// The event it subscribes to: its name.
    pub event: String,
    /// The event's version.
    pub event_version: u32,
    /// Higher runs first.
    pub priority: i32,
    /// `true` for an async handler.
    pub is_async: bool,
    /// `true` for a `#[handler]` fn, `false` for a runtime subscription.
    pub registered: bool,
    /// Its own time limit in milliseconds (the bus default applies without one).
    pub timeout_ms: Option<u64>,
    /// Retries after a failure.
    pub retries: u32,
    /// Whether it has an error callback.
    pub on_error: bool,
    /// `file:line` of its definition or subscription.
    pub location: Option<String>,
    /// The events it declares it publishes.
    pub publishes: Vec<String>,
    #[cfg_attr(feature = "wire", serde(skip))]
    pub(crate) ty: &'static EventType,
}

/// A middleware.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "wire", derive(serde::Serialize))]
#[non_exhaustive]
pub struct MiddlewareNode {
    /// Its name.
    pub name: String,
    /// `true` for a [`SyncMiddleware`](crate::middleware::SyncMiddleware).
    pub is_sync: bool,
    /// The event type it is limited to (`middleware_for`), if any.
    pub scope: Option<String>,
}

/// An upcaster from one version of an event to the next.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "wire", derive(serde::Serialize))]
#[non_exhaustive]
pub struct UpcasterNode {
    /// Its name (the fn's path).
    pub name: String,
    /// The event name.
    pub event: String,
    /// The version it reads.
    pub from_version: u32,
    /// The version it makes.
    pub to_version: u32,
    /// `file:line` of an `#[upcast]` fn.
    pub location: Option<String>,
    #[cfg_attr(feature = "wire", serde(skip))]
    pub(crate) from: &'static EventType,
    #[cfg_attr(feature = "wire", serde(skip))]
    pub(crate) to: &'static EventType,
}

/// A saga and the events that drive it.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "wire", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SagaNode {
    /// The name its instances are stored under.
    pub name: String,
    /// Events that may start an instance (names).
    pub starts: Vec<String>,
    /// Events that advance a running instance (names).
    pub steps: Vec<String>,
}

impl SagaNode {
    /// A saga, as its runtime describes it.
    #[cfg_attr(not(feature = "wire"), allow(dead_code))]
    pub(crate) fn new(name: &str, starts: Vec<String>, steps: Vec<String>) -> Self {
        SagaNode {
            name: name.to_owned(),
            starts,
            steps,
        }
    }
}

/// Which way a route carries events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "wire", derive(serde::Serialize))]
#[cfg_attr(feature = "wire", serde(rename_all = "lowercase"))]
#[non_exhaustive]
pub enum Direction {
    /// From this bus to the wire.
    Out,
    /// From the wire into this bus.
    In,
}

/// A route between the bus and the wire.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "wire", derive(serde::Serialize))]
#[non_exhaustive]
pub struct RouteNode {
    /// The bridge: `redis`.
    pub via: String,
    /// `out` or `in`.
    pub direction: Direction,
    /// The event type the route carries, and every type derived from it: its name.
    pub event: String,
    /// How: `broadcast`, `durable`.
    pub mode: String,
    /// The channel or stream.
    pub target: String,
    #[cfg_attr(feature = "wire", serde(skip))]
    pub(crate) ty: &'static EventType,
}

impl RouteNode {
    /// A route, as a bridge describes it.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn new(
        via: &str,
        direction: Direction,
        ty: &'static EventType,
        mode: &str,
        target: &str,
    ) -> Self {
        RouteNode {
            via: via.to_owned(),
            direction,
            event: ty.name().to_owned(),
            mode: mode.to_owned(),
            target: target.to_owned(),
            ty,
        }
    }
}

/// Something that publishes an event.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "wire", derive(serde::Serialize))]
#[non_exhaustive]
pub struct PublisherNode {
    /// The event's name.
    pub event: String,
    /// Who: a handler's name, a name given to the builder, or a route (`redis durable
    /// orders`).
    pub by: String,
    /// Events derived from `event` may arrive as well (a route from the wire).
    pub derived_too: bool,
    #[cfg_attr(feature = "wire", serde(skip))]
    pub(crate) ty: &'static EventType,
}

impl PublisherNode {
    pub(crate) fn new(ty: &'static EventType, by: &str, derived_too: bool) -> Self {
        PublisherNode {
            event: ty.name().to_owned(),
            by: by.to_owned(),
            derived_too,
            ty,
        }
    }
}

/// What a layer above the bus adds to its topology (a saga runtime, a bridge).
#[derive(Clone, Debug)]
#[cfg_attr(not(feature = "wire"), allow(dead_code))]
pub(crate) enum Contribution {
    Saga(SagaNode),
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Route(RouteNode),
}

#[cfg(feature = "wire")]
impl Topology {
    /// The topology as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a topology is plain data")
    }
}
