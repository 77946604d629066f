//! [`EventBus::topology`]: the bus's handlers, middleware and upcasters, with what the layers
//! above it (sagas, bridges) told it, as a [`Topology`].

use super::EventBus;
use crate::event::EventType;
use crate::topology::{
    Contribution, Direction, EventNode, HandlerNode, MiddlewareNode, PublisherNode, Topology,
    UpcasterNode,
};
use std::cmp::Reverse;

impl EventBus {
    /// What this bus holds: every event type it deals with (handled, published, upcast or
    /// routed, with their versions and ancestors), its
    /// handlers (name, priority, sync or async, policy, where defined), its middleware in
    /// order, the upcasters, the sagas started on it, the routes of bridges started on it, and
    /// who publishes what. Render it with [`Topology::to_markdown`], [`Topology::to_mermaid`]
    /// or `to_json`; check it in CI with [`Topology::check`].
    ///
    /// ```
    /// use eventbus_core::{Event, EventBus};
    ///
    /// #[derive(Event)]
    /// #[event(name = "user.signed_up")]
    /// struct SignedUp;
    ///
    /// let bus = EventBus::new();
    /// let _welcome = bus.subscribe(|_: &SignedUp| {});
    /// let topology = bus.topology();
    /// assert_eq!(topology.handlers[0].event, "user.signed_up");
    /// assert!(topology.to_mermaid().contains("user.signed_up v1"));
    /// ```
    pub fn topology(&self) -> Topology {
        let engine = &self.engine;
        let mut topology = Topology::default();
        let mut handlers = engine.router.handlers();
        handlers.sort_by(|a, b| {
            (
                a.event.name(),
                a.event.version(),
                Reverse(a.priority),
                !a.registered,
                &a.name,
            )
                .cmp(&(
                    b.event.name(),
                    b.event.version(),
                    Reverse(b.priority),
                    !b.registered,
                    &b.name,
                ))
        });
        let mut types: Vec<&'static EventType> = Vec::new();
        for handler in &handlers {
            types.push(handler.event);
            types.extend(handler.publishes.iter().copied());
            topology.handlers.push(HandlerNode {
                name: handler.name.to_string(),
                event: handler.event.name().to_owned(),
                event_version: handler.event.version(),
                priority: handler.priority,
                is_async: handler.callable.is_async(),
                registered: handler.registered,
                timeout_ms: handler.policy.timeout.map(|t| t.as_millis() as u64),
                retries: handler.policy.retries,
                on_error: handler.policy.on_error.is_some(),
                location: handler
                    .location
                    .map(|(file, line)| format!("{file}:{line}")),
                publishes: handler
                    .publishes
                    .iter()
                    .map(|t| t.name().to_owned())
                    .collect(),
                ty: handler.event,
            });
        }
        for layer in engine.layers() {
            topology.middleware.push(MiddlewareNode {
                name: layer.name.to_string(),
                is_sync: layer.is_hooks(),
                scope: layer.scope.map(|t| t.name().to_owned()),
            });
        }
        for upcaster in engine.router.upcasts.upcasters() {
            types.extend([upcaster.from, upcaster.to]);
            topology.upcasters.push(UpcasterNode {
                name: upcaster.name.clone(),
                event: upcaster.from.name().to_owned(),
                from_version: upcaster.from.version(),
                to_version: upcaster.to.version(),
                location: upcaster.location.clone(),
                from: upcaster.from,
                to: upcaster.to,
            });
        }
        for (ty, by) in &engine.config.publishers {
            types.push(ty);
            topology.publishers.push(PublisherNode::new(ty, by, false));
        }
        for contribution in engine.contributions() {
            match contribution {
                Contribution::Saga(saga) => topology.sagas.push(saga),
                Contribution::Route(route) => {
                    types.push(route.ty);
                    if route.direction == Direction::In {
                        let by = format!("{} {} {}", route.via, route.mode, route.target);
                        topology
                            .publishers
                            .push(PublisherNode::new(route.ty, &by, true));
                    }
                    topology.routes.push(route);
                }
            }
        }
        // Every type seen, with its ancestors, once.
        let mut all: Vec<&'static EventType> = types.iter().flat_map(|t| t.lineage()).collect();
        all.sort_by_key(|t| (t.name(), t.version(), t.rust_name()));
        all.dedup_by_key(|t| t.type_id());
        topology.events = all.into_iter().map(EventNode::of).collect();
        topology
    }
}
