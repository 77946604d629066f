//! Who handles a concrete event type, and in which order: the [`Router`] resolves each type's
//! merged, sorted handler list once and caches it until subscriptions change.
//!
//! # The order rule
//! One global order across all hierarchy levels:
//! 1. higher `priority` first;
//! 2. then the more derived type first (a handler of `OrderPlaced` before one of `OrderEvent`);
//! 3. then `#[handler]` fns before runtime subscriptions;
//! 4. then `#[handler]` fns by full path name, subscriptions in the order they were made.
//!
//! Nothing depends on link order.

use super::upcast::{inline_upcasters, UpcastThenFn};
use crate::event::version::{Chain, Upcasts};
use crate::handler::{Callable, HandlerEntry};
use crate::EventType;
use arc_swap::ArcSwap;
use rustc_hash::FxHashMap;
use std::alloc::Layout;
use std::any::TypeId;
use std::cmp::{Ordering, Reverse};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};

/// One handler call of a plan: the handler and the hierarchy level of the part it receives.
#[derive(Debug)]
pub(crate) struct Step {
    pub(crate) handler: Arc<HandlerEntry>,
    pub(crate) level: usize,
    /// The place of its level in the order rule ("more derived first"): the level itself,
    /// except for an old version's event, whose levels span several versions.
    rank: usize,
}

/// The sorted handler calls for one concrete event type.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) steps: Box<[Step]>,
    /// Every step is a sync handler without retries, so the whole plan runs to completion
    /// in one go, without a future per call (the hot path of `execute`).
    pub(crate) inline: bool,
    /// The largest future of its async handlers: what one publish allocates to build them
    /// in, one after another.
    pub(crate) async_layout: Layout,
    /// The type is an old version: the plan's levels span its newer versions, so the event
    /// runs upcast through this chain.
    pub(crate) upcast: Option<Arc<Chain>>,
    /// For an old version one step from the current one, when no handler here takes a type
    /// only the old version has: the current version's own plan. Such an event can run as its
    /// next version alone, which costs the upcaster and one plain dispatch.
    pub(crate) direct: Option<Direct>,
}

/// How an old version runs as its next version alone.
#[derive(Debug)]
pub(crate) struct Direct {
    /// The next version's plan.
    pub(crate) plan: Arc<Plan>,
    /// The upcaster compiled with that plan's dispatch, when it is an `#[upcast]` fn.
    pub(crate) typed: Option<UpcastThenFn>,
}

type Plans = FxHashMap<TypeId, Arc<Plan>>;

#[derive(Default)]
pub(crate) struct Router {
    /// Every handler; changed only under this lock, which is never held across a handler call.
    handlers: Mutex<Vec<Arc<HandlerEntry>>>,
    /// Resolved plans, read without locking; emptied whenever `handlers` changes.
    plans: ArcSwap<Plans>,
    next_id: AtomicU64,
    /// The ways from old event versions to current ones, fixed when the bus is built.
    pub(crate) upcasts: Upcasts,
    /// The typed fast path of the chains that start with an `#[upcast]` fn.
    typed_upcasts: FxHashMap<TypeId, UpcastThenFn>,
}

impl Router {
    pub(crate) fn new(upcasts: Upcasts) -> Self {
        Router {
            typed_upcasts: inline_upcasters(&upcasts),
            upcasts,
            ..Router::default()
        }
    }

    /// Runs `f` with the plan for a concrete event type, resolved on first use. A cached plan
    /// is borrowed without touching its reference count, which publishers on other threads
    /// would otherwise contend on.
    pub(crate) fn with_plan<R>(
        &self,
        event_type: &'static EventType,
        f: impl FnOnce(&Arc<Plan>) -> R,
    ) -> R {
        let plans = self.plans.load();
        match plans.get(&event_type.type_id()) {
            Some(plan) => f(plan),
            None => {
                drop(plans);
                f(&self.resolve_and_cache(event_type))
            }
        }
    }

    /// The plan for a concrete event type, to keep across `.await`s.
    pub(crate) fn plan(&self, event_type: &'static EventType) -> Arc<Plan> {
        self.with_plan(event_type, Arc::clone)
    }

    /// Resolves and caches a plan.
    fn resolve_and_cache(&self, event_type: &'static EventType) -> Arc<Plan> {
        let type_id = event_type.type_id();
        let handlers = self.lock();
        // Another publisher may have resolved it while we waited for the lock.
        let current = self.plans.load_full();
        if let Some(plan) = current.get(&type_id) {
            return Arc::clone(plan);
        }
        let plan = Arc::new(resolve(&handlers, event_type, self));
        let mut plans = Plans::clone(&current);
        plans.insert(type_id, Arc::clone(&plan));
        self.plans.store(Arc::new(plans));
        plan
    }

    /// Every handler, in the order added.
    pub(crate) fn handlers(&self) -> Vec<Arc<HandlerEntry>> {
        self.lock().clone()
    }

    /// Adds a handler and returns its id.
    pub(crate) fn add(&self, mut entry: HandlerEntry) -> u64 {
        let id = self.next_id.fetch_add(1, AtomicOrdering::Relaxed);
        entry.id = id;
        let mut handlers = self.lock();
        handlers.push(Arc::new(entry));
        self.plans.store(Arc::default());
        id
    }

    /// Adds a handler unless one with its key is subscribed to its event already.
    #[cfg_attr(not(feature = "wire"), allow(dead_code))]
    pub(crate) fn add_unless_keyed(&self, entry: HandlerEntry) {
        let exists = self
            .lock()
            .iter()
            .any(|h| h.key.is_some() && h.key == entry.key && h.event == entry.event);
        if !exists {
            self.add(entry);
        }
    }

    /// Removes every handler with this key; `false` if there was none.
    #[cfg_attr(not(feature = "wire"), allow(dead_code))]
    pub(crate) fn remove_keyed(&self, key: &str) -> bool {
        let mut handlers = self.lock();
        let before = handlers.len();
        handlers.retain(|h| h.key.as_deref() != Some(key));
        let removed = handlers.len() != before;
        if removed {
            self.plans.store(Arc::default());
        }
        removed
    }

    /// Removes a handler; `false` if it was already gone.
    pub(crate) fn remove(&self, id: u64) -> bool {
        let mut handlers = self.lock();
        let before = handlers.len();
        handlers.retain(|h| h.id != id);
        let removed = handlers.len() != before;
        if removed {
            self.plans.store(Arc::default());
        }
        removed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<HandlerEntry>>> {
        super::lock(&self.handlers)
    }
}

fn resolve(
    handlers: &[Arc<HandlerEntry>],
    event_type: &'static EventType,
    router: &Router,
) -> Plan {
    let upcasts = &router.upcasts;
    // (level, rank, type): an old version's event is seen through every version it upcasts to.
    let chain = upcasts.chain(event_type);
    let levels: Vec<(usize, usize, &'static EventType)> = match chain {
        Some(chain) => chain
            .levels
            .iter()
            .enumerate()
            .map(|(level, at)| (level, at.rank, at.ty))
            .collect(),
        None => event_type
            .lineage()
            .enumerate()
            .map(|(level, ty)| (level, level, ty))
            .collect(),
    };
    let mut steps: Vec<Step> = levels
        .into_iter()
        .flat_map(|(level, rank, ty)| {
            handlers
                .iter()
                .filter(move |h| h.event == ty)
                .map(move |h| Step {
                    handler: Arc::clone(h),
                    level,
                    rank,
                })
        })
        .collect();
    steps.sort_by(dispatch_order);
    let inline = steps
        .iter()
        .all(|step| !step.handler.callable.is_async() && step.handler.policy.retries == 0);
    let async_layout = steps
        .iter()
        .filter_map(|step| match &step.handler.callable {
            Callable::Async(handler) => Some(handler.layout()),
            Callable::Sync(_) => None,
        })
        .fold(Layout::new::<()>(), |max, layout| {
            Layout::from_size_align(
                max.size().max(layout.size()),
                max.align().max(layout.align()),
            )
            .expect("the larger of two valid layouts is valid")
        });
    let direct = chain.filter(|chain| chain.is_one_step()).and_then(|chain| {
        let only_current = steps.iter().all(|step| chain.is_newest_at(step.level));
        let next = chain.next_version();
        only_current.then(|| Direct {
            plan: Arc::new(resolve(handlers, next, router)),
            typed: router.typed_upcasts.get(&event_type.type_id()).copied(),
        })
    });
    Plan {
        steps: steps.into(),
        inline,
        async_layout,
        upcast: chain.cloned(),
        direct,
    }
}

fn dispatch_order(a: &Step, b: &Step) -> Ordering {
    let (ha, hb) = (&a.handler, &b.handler);
    (Reverse(ha.priority), a.rank, !ha.registered)
        .cmp(&(Reverse(hb.priority), b.rank, !hb.registered))
        .then_with(|| {
            if ha.registered {
                ha.name.cmp(&hb.name)
            } else {
                ha.id.cmp(&hb.id)
            }
        })
}
