//! Link-time registration: what `#[derive(Event)]` and `#[handler]` submit through `inventory`.
//!
//! `inventory` promises no order, so everything read from here is sorted before use.

use crate::handler::{HandlerFn, HandlerPolicy};
use crate::state::StateKeys;
use crate::EventType;

/// A `#[handler]` fn, as submitted at link time.
#[derive(Debug)]
pub struct HandlerRegistration {
    pub(crate) name: &'static str,
    pub(crate) module_path: &'static str,
    pub(crate) event: &'static EventType,
    pub(crate) priority: i32,
    pub(crate) declare_states: fn(&mut StateKeys),
    pub(crate) call: HandlerFn,
    pub(crate) policy: HandlerPolicy,
}

impl HandlerRegistration {
    #[doc(hidden)]
    pub const fn new(
        name: &'static str,
        module_path: &'static str,
        event: &'static EventType,
        priority: i32,
        declare_states: fn(&mut StateKeys),
        call: HandlerFn,
        policy: HandlerPolicy,
    ) -> Self {
        HandlerRegistration {
            name,
            module_path,
            event,
            priority,
            declare_states,
            call,
            policy,
        }
    }
}

/// An event type, as submitted at link time by `#[derive(Event)]`.
#[derive(Debug)]
pub struct EventRegistration {
    pub(crate) event: &'static EventType,
    pub(crate) module_path: &'static str,
}

impl EventRegistration {
    #[doc(hidden)]
    pub const fn new(event: &'static EventType, module_path: &'static str) -> Self {
        EventRegistration { event, module_path }
    }
}

inventory::collect!(HandlerRegistration);
inventory::collect!(EventRegistration);

/// Which link-time registrations a bus takes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Selection {
    all: bool,
    /// Module paths: a registration is taken when its module is one of these or inside one.
    prefixes: Vec<String>,
    /// Full handler names, each taken alone.
    names: Vec<String>,
}

impl Selection {
    pub(crate) fn add_all(&mut self) {
        self.all = true;
    }

    pub(crate) fn add_prefix(&mut self, prefix: &str) {
        self.prefixes.push(prefix.trim_end_matches("::").to_owned());
    }

    pub(crate) fn add_name(&mut self, name: &str) {
        self.names.push(name.to_owned());
    }

    fn takes_module(&self, module_path: &str) -> bool {
        self.all
            || self.prefixes.iter().any(|p| {
                module_path
                    .strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
            })
    }

    /// The selected handlers, sorted by name.
    pub(crate) fn handlers(&self) -> Vec<&'static HandlerRegistration> {
        let mut selected: Vec<_> = inventory::iter::<HandlerRegistration>
            .into_iter()
            .filter(|r| self.takes_module(r.module_path) || self.names.iter().any(|n| n == r.name))
            .collect();
        selected.sort_by_key(|r| r.name);
        selected
    }

    /// Names asked for with `with_handler` that no registered handler has.
    pub(crate) fn unknown_names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str).filter(|name| {
            !inventory::iter::<HandlerRegistration>
                .into_iter()
                .any(|r| r.name == *name)
        })
    }

    /// The selected event types, sorted by Rust name.
    pub(crate) fn events(&self) -> Vec<&'static EventType> {
        let mut selected: Vec<_> = inventory::iter::<EventRegistration>
            .into_iter()
            .filter(|r| self.takes_module(r.module_path))
            .map(|r| r.event)
            .collect();
        selected.sort_by_key(|t| t.rust_name());
        selected
    }
}

#[cfg(test)]
mod tests {
    use super::Selection;

    #[test]
    fn prefixes_match_whole_path_segments() {
        let mut selection = Selection::default();
        assert!(!selection.takes_module("shop::orders"));
        selection.add_prefix("shop::orders");
        assert!(selection.takes_module("shop::orders"));
        assert!(selection.takes_module("shop::orders::email"));
        assert!(!selection.takes_module("shop::orders_v2"));
        assert!(!selection.takes_module("shop"));
    }
}
