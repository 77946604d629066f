//! Link-time registration: what `#[derive(Event)]` and `#[handler]` submit through `inventory`.
//!
//! `inventory` promises no order, so everything read from here is sorted before use.

use super::{HandlerFn, HandlerPolicy, StateKeys};
use crate::event::EventType;

/// A `#[handler]` fn, as submitted at link time.
#[derive(Debug)]
pub struct HandlerRegistration {
    pub(crate) name: &'static str,
    /// The fn's own path, which `name = ".."` may have replaced as its name.
    pub(crate) fn_path: &'static str,
    /// Where the fn is defined, for errors that name two definitions.
    pub(crate) file: &'static str,
    pub(crate) line: u32,
    pub(crate) module_path: &'static str,
    pub(crate) event: &'static EventType,
    pub(crate) priority: i32,
    pub(crate) declare_states: fn(&mut StateKeys),
    pub(crate) call: HandlerFn,
    pub(crate) policy: HandlerPolicy,
    /// `#[handler(publishes = [..])]`.
    pub(crate) publishes: &'static [&'static EventType],
}

impl HandlerRegistration {
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    pub const fn new(
        name: &'static str,
        fn_path: &'static str,
        (file, line): (&'static str, u32),
        module_path: &'static str,
        event: &'static EventType,
        priority: i32,
        declare_states: fn(&mut StateKeys),
        call: HandlerFn,
        policy: HandlerPolicy,
    ) -> Self {
        HandlerRegistration {
            name,
            fn_path,
            file,
            line,
            module_path,
            event,
            priority,
            declare_states,
            call,
            policy,
            publishes: &[],
        }
    }

    /// The events the handler declares it publishes (`publishes = [..]`).
    #[doc(hidden)]
    pub const fn publishes(self, publishes: &'static [&'static EventType]) -> Self {
        HandlerRegistration { publishes, ..self }
    }
}

/// An event type, as submitted at link time by `#[derive(Event)]`.
#[derive(Debug)]
pub struct EventRegistration {
    /// `None` only for a type whose derive failed to make it an event (compilation fails
    /// then anyway): read through a probe, so such a type is reported once, at its field.
    pub(crate) event: fn() -> Option<&'static EventType>,
    pub(crate) module_path: &'static str,
}

impl EventRegistration {
    #[doc(hidden)]
    pub const fn new(event: fn() -> Option<&'static EventType>, module_path: &'static str) -> Self {
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
        // A package name (`order-service`) is accepted for its crate name (`order_service`).
        let prefix = prefix.trim_end_matches("::").replace('-', "_");
        self.prefixes.push(prefix);
    }

    pub(crate) fn add_name(&mut self, name: &str) {
        self.names.push(name.to_owned());
    }

    /// Whether anything asked for registered handlers in bulk (all, or by module).
    pub(crate) fn wants_registered(&self) -> bool {
        self.all || !self.prefixes.is_empty()
    }

    fn takes_module(&self, module_path: &str) -> bool {
        self.all || self.prefixes.iter().any(|p| under(module_path, p))
    }

    /// The selected handlers, sorted by name.
    pub(crate) fn handlers(&self) -> Vec<&'static HandlerRegistration> {
        let mut selected: Vec<_> = all_handlers()
            .filter(|r| self.takes_module(r.module_path) || self.names.iter().any(|n| n == r.name))
            .collect();
        selected.sort_by_key(|r| r.name);
        selected
    }

    /// Names asked for with `with_handler` that no registered handler has.
    pub(crate) fn unknown_names(&self) -> impl Iterator<Item = &str> {
        self.names
            .iter()
            .map(String::as_str)
            .filter(|name| !all_handlers().any(|r| r.name == *name))
    }

    /// Prefixes given to `with_registered_handlers_from` that no handler's module lies in.
    pub(crate) fn unmatched_prefixes(&self) -> impl Iterator<Item = &str> {
        self.prefixes
            .iter()
            .map(String::as_str)
            .filter(|p| !all_handlers().any(|r| under(r.module_path, p)))
    }

    /// The selected event types, sorted by Rust name.
    pub(crate) fn events(&self) -> Vec<&'static EventType> {
        let mut selected: Vec<_> = inventory::iter::<EventRegistration>
            .into_iter()
            .filter(|r| self.takes_module(r.module_path))
            .filter_map(|r| (r.event)())
            .collect();
        selected.sort_by_key(|t| t.rust_name());
        selected
    }
}

/// Every event type linked into the binary, in no particular order.
pub(crate) fn all_events() -> impl Iterator<Item = &'static EventType> {
    inventory::iter::<EventRegistration>
        .into_iter()
        .filter_map(|r| (r.event)())
}

/// Every `#[handler]` linked into the binary, in no particular order.
pub(crate) fn all_handlers() -> impl Iterator<Item = &'static HandlerRegistration> {
    inventory::iter::<HandlerRegistration>.into_iter()
}

/// Whether `module_path` is `prefix` or lies inside it (whole path segments only).
fn under(module_path: &str, prefix: &str) -> bool {
    module_path
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
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

    #[test]
    fn a_package_name_selects_its_crate() {
        let mut selection = Selection::default();
        selection.add_prefix("order-service::");
        assert!(selection.takes_module("order_service::billing"));
    }
}
