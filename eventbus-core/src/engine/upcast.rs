//! An `#[upcast]` fn compiled together with the dispatch of the version it makes: publishing
//! an old version to handlers of the next one then costs the upcaster and one plain dispatch,
//! with the new version on the stack and no type-erased box between the two.

use super::router::Plan;
use super::Engine;
use crate::event::version::{UpcastFn, Upcasts};
use crate::event::{event_part, EventMeta, EventPart, EventType};
use crate::report::PublishReport;
use rustc_hash::FxHashMap;
use std::any::TypeId;
use std::fmt;

/// Upcasts an old event and dispatches the result inline (what `#[upcast]` generates).
/// (`Some` always: the shape of the inline path's result, so the report is written in place.)
pub(crate) type UpcastThenFn = fn(UpcastThen<'_>) -> Option<PublishReport>;

/// The typed fast path of one `#[upcast]` fn, submitted at link time beside its
/// [`UpcasterRegistration`](crate::event::version::UpcasterRegistration).
#[doc(hidden)]
pub struct InlineUpcaster {
    from: fn() -> Option<&'static EventType>,
    /// The fn's full path: the same as its `UpcasterRegistration`'s.
    name: &'static str,
    run: UpcastThenFn,
}

impl InlineUpcaster {
    #[doc(hidden)]
    pub const fn new(
        from: fn() -> Option<&'static EventType>,
        name: &'static str,
        run: fn(UpcastThen<'_>) -> Option<PublishReport>,
    ) -> Self {
        InlineUpcaster { from, name, run }
    }
}

impl fmt::Debug for InlineUpcaster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InlineUpcaster({})", self.name)
    }
}

inventory::collect!(InlineUpcaster);

/// Everything an inline upcast needs besides the upcaster: the old event, the plan of its
/// next version, and the engine that runs it.
#[doc(hidden)]
pub struct UpcastThen<'a> {
    engine: &'a Engine,
    old: &'a EventPart,
    plan: &'a Plan,
    meta: &'a EventMeta,
}

impl fmt::Debug for UpcastThen<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpcastThen")
            .field("event_type", &self.meta.event_type.to_string())
            .finish_non_exhaustive()
    }
}

impl<'a> UpcastThen<'a> {
    pub(super) fn new(
        engine: &'a Engine,
        old: &'a EventPart,
        plan: &'a Plan,
        meta: &'a EventMeta,
    ) -> Self {
        UpcastThen {
            engine,
            old,
            plan,
            meta,
        }
    }
}

/// Upcasts with `U` and runs the next version's plan (used by generated code): `U::upcast`
/// is called directly here, so it can be inlined.
#[doc(hidden)]
pub fn upcast_then<U: UpcastFn>(then: UpcastThen<'_>) -> Option<PublishReport> {
    let next = U::upcast(event_part::<U::Old>(then.old));
    then.engine.run_plan_inline(then.plan, &next, then.meta)
}

/// The typed fast path of each chain whose first step is an `#[upcast]` fn, by the type it
/// starts from.
pub(crate) fn inline_upcasters(upcasts: &Upcasts) -> FxHashMap<TypeId, UpcastThenFn> {
    inventory::iter::<InlineUpcaster>
        .into_iter()
        .filter_map(|inline| {
            let from = (inline.from)()?;
            let first = upcasts.chain(from)?.first_name();
            (first == inline.name).then_some((from.type_id(), inline.run))
        })
        .collect()
}
