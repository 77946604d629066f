//! Running one event: through the middleware, then its handlers in plan order, each under its
//! policy (timeout, retries, error callback), with failures isolated.

use super::pipeline::{run_afters, run_befores, Envelope, EnvelopeMut, Layer, Next};
use super::router::{Plan, Step};
use super::upcast::UpcastThen;
use super::{contain_panic, DispatchMode, Engine};
use crate::event::version::Upcast;
use crate::event::{ErasedEvent, EventMeta, EventPart, OwnedEvent};
use crate::handler::{
    call_in_place, panicked, to_failure, Callable, Context, FutureSlot, HandlerEntry,
};
use crate::report::{FailureKind, HandlerFailure, PublishReport};
use backon::{BackoffBuilder, ExponentialBuilder};
use std::alloc::Layout;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

impl Engine {
    /// Runs an accepted event: through the middleware when there is any, else straight to the
    /// handlers (no boxing on that path).
    pub(crate) async fn run<E: OwnedEvent>(
        &self,
        mut event: E,
        mut meta: EventMeta,
    ) -> PublishReport {
        if let Some(chain) = self.router.upcasts.chain(meta.event_type) {
            if !event.is_upcast() {
                // An old version: from here on it travels with its newer versions.
                let event = Upcast::owned(event.boxed(), Arc::clone(chain));
                return self.run_upcast(event, meta).await;
            }
        }
        // Middleware and async handlers may read the time after awaiting: take it now.
        meta.stamp();
        let layers = self.layers();
        if !self.hooks_only() {
            return Next::start(self.arc())
                .run(Envelope::new(event.boxed(), meta))
                .await;
        }
        // No middleware, or only sync middleware whose hooks run around the dispatch: nothing
        // is boxed. (One dispatch for both, and the arguments used in place, not moved to
        // locals: every byte of this future is moved when a publish is built.)
        let stop = match layers.is_empty() {
            true => 0,
            false => match run_befores(layers, 0, &mut EnvelopeMut::new(&mut event, &mut meta)) {
                (stop, Some(mut report)) => {
                    run_afters(layers, 0, stop, &mut report);
                    return report;
                }
                (stop, None) => stop,
            },
        };
        let mut report = self.dispatch(&event, &meta).await;
        run_afters(layers, 0, stop, &mut report);
        report
    }

    /// Runs an upcast event the full way. (Boxed: `run` recurses into itself here.)
    fn run_upcast(
        &self,
        event: Upcast<'static>,
        meta: EventMeta,
    ) -> crate::handler::BoxFuture<'_, PublishReport> {
        Box::pin(self.run(event, meta))
    }

    /// Whether every middleware is a sync one (or there is none).
    fn hooks_only(&self) -> bool {
        self.layers().iter().all(Layer::is_hooks)
    }

    /// Runs a publish to completion right here when it can: its handlers are all plain sync
    /// ones and its middleware (if any) is all sync. `None` when it needs the full path.
    pub(crate) fn run_inline(
        &self,
        event: &mut dyn ErasedEvent,
        meta: &mut EventMeta,
    ) -> Option<PublishReport> {
        let layers = self.layers();
        if layers.is_empty() {
            return self.try_dispatch_inline(event, meta);
        }
        if !self.hooks_only() {
            return None;
        }
        // One plan from the check to the calls: the hooks run once, whatever subscribes.
        self.router.with_plan(meta.event_type, |plan| {
            if !plan.inline {
                return None;
            }
            let mut upcast;
            let event: &mut dyn ErasedEvent = match &plan.upcast {
                Some(chain) if !event.is_upcast() => {
                    upcast = Upcast::borrowed(&*event, chain);
                    &mut upcast
                }
                _ => event,
            };
            let (stop, ended) = run_befores(layers, 0, &mut EnvelopeMut::new(event, meta));
            let mut report = match ended {
                Some(report) => report,
                None => self.dispatch_plan_inline(plan, event, meta),
            };
            run_afters(layers, 0, stop, &mut report);
            Some(report)
        })
    }

    /// The hot path: an event without middleware whose handlers are all plain sync ones runs
    /// to completion right here, with no future per handler and no reference counting. `None`
    /// when it needs the full path: middleware, async handlers or retries. With a subscriber
    /// at `DEBUG` it stays here, each handler in its `handler` span.
    pub(crate) fn try_dispatch_inline(
        &self,
        event: &dyn ErasedEvent,
        meta: &EventMeta,
    ) -> Option<PublishReport> {
        if !self.layers().is_empty() {
            return None;
        }
        self.dispatch_if_inline(event, meta)
    }

    /// The handlers of an inline plan, run right here (the end of a middleware chain too);
    /// `None` when the plan needs [`dispatch`](Self::dispatch).
    pub(crate) fn dispatch_if_inline(
        &self,
        event: &dyn ErasedEvent,
        meta: &EventMeta,
    ) -> Option<PublishReport> {
        self.router.with_plan(meta.event_type, |plan| {
            if !plan.inline {
                return None;
            }
            // Each arm returns its run's result as it is: the report is written in place.
            match (&plan.upcast, &plan.direct) {
                // An old version only handlers of its next version take: run as that.
                (Some(chain), Some(direct)) => match (direct.typed, event.plain()) {
                    (Some(typed), Some(old)) => {
                        typed(UpcastThen::new(self, old, &direct.plan, meta))
                    }
                    (None, Some(_)) => {
                        let next = chain.upcast_once(event);
                        self.run_plan_inline(&direct.plan, &*next, meta)
                    }
                    // Upcast already (the end of a middleware chain): its versions are here.
                    (_, None) => self.run_plan_inline(plan, event, meta),
                },
                // An old version, upcast right here: its newer versions live on this stack.
                (Some(chain), _) if !event.is_upcast() => {
                    self.run_plan_inline(plan, &Upcast::borrowed(event, chain), meta)
                }
                _ => self.run_plan_inline(plan, event, meta),
            }
        })
    }

    /// Runs an inline plan (see `try_dispatch_inline`).
    #[inline]
    fn dispatch_plan_inline(
        &self,
        plan: &Plan,
        event: &dyn ErasedEvent,
        meta: &EventMeta,
    ) -> PublishReport {
        let mut report = PublishReport::new(meta);
        let traced = tracing::level_enabled!(tracing::Level::DEBUG);
        self.call_all_inline(&plan.steps, event, meta, traced, &mut report);
        self.conclude(report, event, meta)
    }

    /// [`dispatch_plan_inline`](Self::dispatch_plan_inline) in the shape of the inline path's
    /// result (`Some` always), which its callers return as it is. Not inlined: each caller
    /// then passes its own result slot down, and the report is never moved.
    #[inline(never)]
    pub(super) fn run_plan_inline(
        &self,
        plan: &Plan,
        event: &dyn ErasedEvent,
        meta: &EventMeta,
    ) -> Option<PublishReport> {
        Some(self.dispatch_plan_inline(plan, event, meta))
    }

    /// Whether a publish of this type would run inline (see `try_dispatch_inline`).
    pub(crate) fn runs_inline(&self, event_type: &'static crate::EventType) -> bool {
        self.layers().is_empty() && self.router.with_plan(event_type, |plan| plan.inline)
    }

    /// Calls sync handlers in order under one unwind guard: a panic stops the run at the
    /// handler that panicked, which is recorded, and a new run goes on from the next one.
    /// `traced`: a span per handler call (checked once per publish, not per handler).
    fn call_all_inline(
        &self,
        steps: &[Step],
        event: &dyn ErasedEvent,
        meta: &EventMeta,
        traced: bool,
        report: &mut PublishReport,
    ) {
        // No span at all when untraced: even an empty one costs its drop, per handler.
        let span_of = |step: &Step| match traced {
            true => handler_span(&step.handler, meta),
            false => tracing::Span::none(),
        };
        let mut next = 0;
        while next < steps.len() {
            let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
                while let Some(step) = steps.get(next) {
                    let (part, ctx) = self.prepare(step, event, meta);
                    let call = || step.handler.callable.call_sync_unguarded(part, ctx);
                    let (outcome, span) = match traced {
                        false => (call(), None),
                        true => {
                            let span = span_of(step);
                            (span.in_scope(call), Some(span))
                        }
                    };
                    next += 1;
                    let outcome = match outcome {
                        Some(Ok(())) if !traced => {
                            report.record(None);
                            continue;
                        }
                        Some(result) => result.map_err(FailureKind::Error),
                        None => unreachable!("an inline plan has only sync handlers"),
                    };
                    let span = span.unwrap_or_else(tracing::Span::none);
                    report.record(settle(&step.handler, &span, ctx, outcome, 1));
                }
            }));
            if let Err(panic) = run {
                let step = &steps[next];
                let (_, ctx) = self.prepare(step, event, meta);
                next += 1;
                let span = span_of(step);
                report.record(settle(&step.handler, &span, ctx, Err(panicked(panic)), 1));
            }
        }
    }

    /// Calls every handler of the event's plan and reports.
    pub(crate) async fn dispatch(
        &self,
        event: &dyn ErasedEvent,
        meta: &EventMeta,
    ) -> PublishReport {
        let plan = self.router.plan(meta.event_type);
        let mut report = PublishReport::new(meta);
        match self.config.mode {
            DispatchMode::Sequential => {
                // One buffer for the async handlers' futures, built there one after another.
                let mut slot = FutureSlot::new();
                let traced = tracing::level_enabled!(tracing::Level::DEBUG);
                for step in plan.steps.iter() {
                    let failure =
                        match (&step.handler.callable, self.call_inline(step, event, meta)) {
                            (_, Some(failure)) => failure,
                            // The common case, without a nested future: a plain async handler
                            // (no time limit, no retries), its future built in the slot.
                            (Callable::Async(in_place), None) if !traced && self.is_plain(step) => {
                                let (part, ctx) = self.prepare(step, event, meta);
                                let outcome = call_in_place(
                                    &**in_place,
                                    &mut slot,
                                    plan.async_layout,
                                    part,
                                    ctx,
                                )
                                .await;
                                let none = tracing::Span::none();
                                settle(&step.handler, &none, ctx, to_failure(outcome), 1)
                            }
                            // Traced, or under a policy: boxed, so that the rare path's large
                            // state does not grow every publish's future (which is moved
                            // when built, on the inline path too).
                            (_, None) => {
                                let slot = Some((&mut slot, plan.async_layout));
                                Box::pin(self.call_async(step, event, meta, slot)).await
                            }
                        };
                    report.record(failure);
                }
            }
            DispatchMode::ConcurrentWithinPriority => {
                for level in plan
                    .steps
                    .chunk_by(|a, b| a.handler.priority == b.handler.priority)
                {
                    let calls = level.iter().map(|step| async move {
                        match self.call_inline(step, event, meta) {
                            Some(failure) => failure,
                            None => self.call_async(step, event, meta, None).await,
                        }
                    });
                    for failure in futures_util::future::join_all(calls).await {
                        report.record(failure);
                    }
                }
            }
        }
        self.conclude(report, event, meta)
    }

    /// The end of every run: an event no handler took is a dead event, and the report takes
    /// the event's id if a handler fixed it.
    #[inline]
    fn conclude(
        &self,
        mut report: PublishReport,
        event: &dyn ErasedEvent,
        meta: &EventMeta,
    ) -> PublishReport {
        if report.handled() == 0 {
            self.dead_event(event, meta);
        }
        report.finish(meta);
        report
    }

    /// Runs a sync handler without retries right here: no future, no timer (the hot path).
    /// `None` when the handler needs the async path.
    fn call_inline(
        &self,
        step: &Step,
        event: &dyn ErasedEvent,
        meta: &EventMeta,
    ) -> Option<Option<HandlerFailure>> {
        let handler = &step.handler;
        if handler.policy.retries > 0 || handler.callable.is_async() {
            return None;
        }
        let (part, ctx) = self.prepare(step, event, meta);
        let span = handler_span(handler, meta);
        let outcome = if span.is_disabled() {
            handler.callable.call_sync(part, ctx)?
        } else {
            span.in_scope(|| handler.callable.call_sync(part, ctx))?
        };
        Some(settle(handler, &span, ctx, outcome, 1))
    }

    /// Whether a step's handler runs without a timer or retries.
    #[inline]
    fn is_plain(&self, step: &Step) -> bool {
        step.handler.policy.retries == 0 && self.timeout_of(&step.handler).is_none()
    }

    /// The time limit of a handler: its own, else the bus default; none for a sync handler,
    /// which cannot be interrupted.
    fn timeout_of(&self, handler: &HandlerEntry) -> Option<Duration> {
        handler
            .policy
            .timeout
            .or(self.config.default_timeout)
            .filter(|_| handler.callable.is_async())
    }

    /// Async handlers, and handlers with a timeout or retries. Its future is large (timer
    /// state): `dispatch` boxes it, and `join_all` keeps it on the heap, so no publish's own
    /// future carries it. With a `slot` (and the plan's largest future), a plain async
    /// handler's future is built in it instead of a box of its own.
    async fn call_async(
        &self,
        step: &Step,
        event: &dyn ErasedEvent,
        meta: &EventMeta,
        slot: Option<(&mut FutureSlot, Layout)>,
    ) -> Option<HandlerFailure> {
        let handler = &step.handler;
        let timeout = self.timeout_of(handler);
        if timeout.is_some() || handler.policy.retries > 0 {
            return self.call_with_policy(step, event, meta, timeout).await;
        }
        let (part, ctx) = self.prepare(step, event, meta);
        let span = handler_span(handler, meta);
        let call = async {
            match (&handler.callable, slot) {
                (Callable::Async(in_place), Some((slot, hint))) => {
                    to_failure(call_in_place(&**in_place, slot, hint, part, ctx).await)
                }
                (callable, _) => callable.call(part, ctx).await,
            }
        };
        let outcome = if span.is_disabled() {
            call.await
        } else {
            call.instrument(span.clone()).await
        };
        settle(handler, &span, ctx, outcome, 1)
    }

    /// Calls one handler under its timeout and retries; `Some` when its last attempt failed.
    async fn call_with_policy(
        &self,
        step: &Step,
        event: &dyn ErasedEvent,
        meta: &EventMeta,
        timeout: Option<Duration>,
    ) -> Option<HandlerFailure> {
        let handler = &step.handler;
        let (part, ctx) = self.prepare(step, event, meta);
        let span = handler_span(handler, meta);
        // Each retry waits `backoff`, then twice as long as the last.
        let mut waits = ExponentialBuilder::new()
            .with_min_delay(handler.policy.backoff)
            .without_max_delay()
            .with_max_times(handler.policy.retries as usize)
            .build();
        let mut attempt = 1;
        loop {
            let call = async {
                match timeout {
                    Some(limit) => tokio::time::timeout(limit, handler.callable.call(part, ctx))
                        .await
                        .unwrap_or(Err(FailureKind::TimedOut(limit))),
                    None => handler.callable.call(part, ctx).await,
                }
            };
            let outcome = if span.is_disabled() {
                call.await
            } else {
                call.instrument(span.clone()).await
            };
            match outcome {
                Err(kind) if attempt <= handler.policy.retries => {
                    let wait = waits.next().unwrap_or(handler.policy.backoff);
                    tracing::debug!(parent: &span, attempt, error = %kind, ?wait, "handler failed; retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                outcome => return settle(handler, &span, ctx, outcome, attempt),
            }
        }
    }

    /// The part a step's handler receives, and its context.
    fn prepare<'a>(
        &'a self,
        step: &'a Step,
        event: &'a dyn ErasedEvent,
        meta: &'a EventMeta,
    ) -> (&'a EventPart, Context<'a>) {
        let part = event
            .part(step.level)
            .expect("a plan's levels lie within the event's lineage");
        (part, Context::new(self, meta, event, &step.handler.name))
    }

    fn dead_event(&self, event: &dyn ErasedEvent, meta: &EventMeta) {
        let Some(hook) = &self.config.on_dead_event else {
            return;
        };
        let ctx = Context::new(self, meta, event, "on_dead_event");
        contain_panic("on_dead_event", meta.event_name(), || hook(ctx));
    }
}

/// The span of one handler call; none (and no field computed, such as the event's id)
/// unless `DEBUG` is enabled.
fn handler_span(handler: &HandlerEntry, meta: &EventMeta) -> tracing::Span {
    if !tracing::level_enabled!(tracing::Level::DEBUG) {
        return tracing::Span::none();
    }
    tracing::debug_span!(
        "handler",
        handler = %handler.name,
        event = meta.event_type.name(),
        id = %meta.event_id(),
        outcome = tracing::field::Empty,
    )
}

/// Turns a handler's last outcome into its failure, if any: traced, and handed to its
/// `on_error` callback (whose panics are contained).
fn settle(
    handler: &HandlerEntry,
    span: &tracing::Span,
    ctx: Context<'_>,
    outcome: Result<(), FailureKind>,
    attempts: u32,
) -> Option<HandlerFailure> {
    let kind = match outcome {
        Ok(()) => {
            span.record("outcome", "ok");
            return None;
        }
        Err(kind) => kind,
    };
    span.record("outcome", "failed");
    tracing::debug!(parent: span, attempts, error = %kind, "handler failed");
    let failure = HandlerFailure::handler_failed(&handler.name, kind, attempts);
    if let Some(on_error) = &handler.policy.on_error {
        contain_panic("on_error", &handler.name, || on_error(&failure, ctx));
    }
    Some(failure)
}
