//! The check a user runs in CI: every event published has a handler (here or across the wire),
//! every handler's event is published somewhere.

use super::Topology;
use crate::event::EventType;
use std::fmt;

/// One gap found by [`Topology::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopologyError {
    /// An event is published, but no handler takes it (nor any of its ancestors or newer
    /// versions), and no route sends it to the wire.
    Unhandled {
        /// The event (`name vN`).
        event: String,
        /// Who publishes it.
        published_by: Vec<String>,
    },
    /// A handler's event is never published: not declared by any publisher, not published by
    /// any handler, not received from the wire (nor any event derived from it, nor an older
    /// version of it).
    NeverPublished {
        /// The handler's name.
        handler: String,
        /// Its event (`name vN`).
        event: String,
    },
}

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopologyError::Unhandled {
                event,
                published_by,
            } => write!(
                f,
                "`{event}` is published (by {}) but nothing handles it: subscribe a handler, \
                 route it to the wire, or stop publishing it",
                published_by.join(", ")
            ),
            TopologyError::NeverPublished { handler, event } => write!(
                f,
                "handler `{handler}` takes `{event}`, which nothing publishes: declare its \
                 publisher (`#[handler(publishes = [..])]`, `SubscribeOptions::publishes`, \
                 `EventBusBuilder::publisher`), route it from the wire, or remove the handler"
            ),
        }
    }
}

/// Every gap found by [`Topology::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopologyErrors(pub Vec<TopologyError>);

impl fmt::Display for TopologyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} gap(s) between publishers and handlers:",
            self.0.len()
        )?;
        for error in &self.0 {
            write!(f, "\n  - {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TopologyErrors {}

impl Topology {
    /// Checks that every event published has a handler (of it, an ancestor, or a newer version
    /// it upcasts to) or a route to the wire, and that every handler's event is published
    /// somewhere (it, a type derived from it, or an older version of it). What counts as
    /// published: events a handler declares (`#[handler(publishes = [..])]`,
    /// `SubscribeOptions::publishes`), publishers given to the builder
    /// (`EventBusBuilder::publisher`), and events that arrive from the wire (a bridge's routes,
    /// with every type derived from the route's).
    ///
    /// Meant for a test in CI:
    ///
    /// ```
    /// use eventbus_core::{Event, EventBus};
    ///
    /// #[derive(Event)]
    /// struct Signup;
    ///
    /// let bus = EventBus::builder().publisher::<Signup>("signup form").build().unwrap();
    /// let error = bus.topology().check().unwrap_err();
    /// assert!(error.to_string().contains("nothing handles it"));
    /// let _sub = bus.subscribe(|_: &Signup| {});
    /// bus.topology().check().unwrap();
    /// ```
    pub fn check(&self) -> Result<(), TopologyErrors> {
        // (event, who): every publication, from every source.
        let mut published: Vec<(&'static EventType, String, bool)> = self
            .publishers
            .iter()
            .map(|p| (p.ty, p.by.clone(), p.derived_too))
            .collect();
        for handler in &self.handlers {
            for name in &handler.publishes {
                for event in self.events.iter().filter(|e| &e.name == name) {
                    published.push((event.ty, format!("handler `{}`", handler.name), false));
                }
            }
        }
        let mut errors = Vec::new();

        // Published but unhandled.
        let mut seen = Vec::new();
        for &(ty, _, derived_too) in &published {
            if seen.contains(&ty.type_id()) {
                continue;
            }
            seen.push(ty.type_id());
            let handled = self.views(ty).any(|view| {
                self.handlers.iter().any(|h| h.ty == view)
                    || self.routes.iter().any(|r| {
                        r.direction == super::Direction::Out
                            && ty.level_of(r.ty.type_id()).is_some()
                    })
            }) || (derived_too
                && self
                    .handlers
                    .iter()
                    .any(|h| h.ty.level_of(ty.type_id()).is_some()));
            if !handled {
                let mut by: Vec<String> = published
                    .iter()
                    .filter(|&&(t, _, _)| t.type_id() == ty.type_id())
                    .map(|(_, by, _)| by.clone())
                    .collect();
                by.sort();
                by.dedup();
                errors.push(TopologyError::Unhandled {
                    event: ty.to_string(),
                    published_by: by,
                });
            }
        }

        // Handled but never published.
        for handler in &self.handlers {
            let reached = published.iter().any(|&(ty, _, derived_too)| {
                self.views(ty).any(|view| *view == *handler.ty)
                    || (derived_too && handler.ty.level_of(ty.type_id()).is_some())
            });
            if !reached {
                errors.push(TopologyError::NeverPublished {
                    handler: handler.name.clone(),
                    event: handler.ty.to_string(),
                });
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(TopologyErrors(errors))
        }
    }

    /// Every type an event of type `ty` is seen as by handlers: its lineage, and the lineage
    /// of each newer version its upcasters lead to.
    fn views(&self, ty: &'static EventType) -> impl Iterator<Item = &'static EventType> + '_ {
        let mut versions = vec![ty];
        let mut at = ty;
        while let Some(next) = self
            .upcasters
            .iter()
            .find(|u| u.from.type_id() == at.type_id())
        {
            versions.push(next.to);
            at = next.to;
        }
        versions.into_iter().flat_map(EventType::lineage)
    }
}
