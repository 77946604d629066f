//! [`Sagas`]: the sagas of one bus, their steps subscribed as handlers, their timers.

use super::context::{Effects, SagaContext};
use super::memory::MemoryStore;
use super::store::{Commit, Committed, OutboxEntry, SagaStore, Status};
use super::{Saga, SagaRegistration, StepFn, Steps};
use crate::bus::{EventBus, Subscription};
use crate::engine::Contributed;
use crate::event::{ErasedEvent, Event, EventId, EventMeta, EventType};
use crate::handler::{
    BoxFuture, Context, FollowUps, HandlerResult, OwnedContext, SubscribeOptions,
};
use crate::topology::{Contribution, SagaNode};
use rustc_hash::FxHashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::task::AbortHandle;

/// How often a step runs again after losing a race for its instance before it fails.
const MAX_ATTEMPTS: u32 = 64;

/// Subscribes one step to a bus.
type Subscribe = Box<dyn FnOnce(&EventBus, &Arc<Shared>) -> Subscription + Send>;

/// One step of saga `S`, before it is subscribed.
pub(crate) struct StepDef<S> {
    subscribe: Subscribe,
    event_type: &'static EventType,
    starts: bool,
    _saga: std::marker::PhantomData<fn(S)>,
}

impl<S: Saga> StepDef<S> {
    pub(crate) fn new<E: Event>(
        name: &'static str,
        starts: bool,
        key: fn(&E) -> String,
        run: StepFn<S, E>,
    ) -> Self {
        let subscribe = move |bus: &EventBus, shared: &Arc<Shared>| {
            let shared = shared.clone();
            let step = Step {
                name,
                starts,
                key,
                run,
            };
            let options = SubscribeOptions::new().name(format!("saga {}::{name}", S::NAME));
            bus.subscribe_with(
                options,
                funnel(move |event: &E, ctx: Context<'_>| {
                    let shared = shared.clone();
                    Box::pin(async move { step.handle(&shared, event, ctx).await })
                        as BoxFuture<'_, HandlerResult>
                }),
            )
        };
        StepDef {
            subscribe: Box::new(subscribe),
            event_type: E::TYPE,
            starts,
            _saga: std::marker::PhantomData,
        }
    }
}

/// Names the closure's signature for every lifetime (an async handler whose future borrows
/// the event and the context).
fn funnel<E, F>(f: F) -> F
where
    F: for<'a> Fn(&'a E, Context<'a>) -> BoxFuture<'a, HandlerResult>,
{
    f
}

struct Step<S, E> {
    name: &'static str,
    starts: bool,
    key: fn(&E) -> String,
    run: StepFn<S, E>,
}

// Fn pointers and a name: copied into each call's future, whatever `S` and `E` are.
impl<S, E> Clone for Step<S, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S, E> Copy for Step<S, E> {}

impl<S: Saga, E: Event> Step<S, E> {
    /// Runs the step for `event` on its instance: load, run, commit over the version read, and
    /// on a conflict again from the fresh state. Effects are applied once, after the commit.
    async fn handle(&self, shared: &Shared, event: &E, ctx: Context<'_>) -> HandlerResult {
        let key = (self.key)(event);
        let stats = shared.stats(S::NAME);
        let event_id = ctx.event_id();
        for _ in 0..MAX_ATTEMPTS {
            let instance = shared
                .store
                .load(S::NAME, &key)
                .await
                .map_err(|e| e.to_string())?;
            let (mut state, expected_version) = match instance {
                Some(instance) if instance.status.has_ended() => {
                    bump(&stats.after_end);
                    tracing::debug!(saga = S::NAME, %key, step = self.name, "event for an ended saga ignored");
                    return Ok(());
                }
                Some(instance) if instance.processed.contains(&event_id) => {
                    bump(&stats.duplicates);
                    tracing::debug!(saga = S::NAME, %key, step = self.name, %event_id, "event already processed");
                    return Ok(());
                }
                Some(instance) => {
                    let state: S = serde_json::from_value(instance.state).map_err(|e| {
                        format!(
                            "saga `{}` instance `{key}`: stored state does not decode: {e}",
                            S::NAME
                        )
                    })?;
                    (state, Some(instance.version))
                }
                None if self.starts => (S::default(), None),
                None => {
                    bump(&stats.unmatched);
                    tracing::debug!(saga = S::NAME, %key, step = self.name, "no instance, and this event does not start one: ignored");
                    return Ok(());
                }
            };
            let mut saga_ctx = SagaContext::new(ctx.meta(), &key);
            (self.run)(&mut state, event, &mut saga_ctx)?;
            let effects = saga_ctx.effects;
            let status = effects.status.clone();
            let state = serde_json::to_value(&state).map_err(|e| {
                format!(
                    "saga `{}` instance `{key}`: state does not encode: {e}",
                    S::NAME
                )
            })?;
            let mut commit = Commit::new(expected_version, state, status.clone(), event_id);
            // With an outbox, what the step publishes and schedules is committed with it.
            let outbox = shared.store.outbox();
            let durable = match outbox {
                Some(_) => {
                    Some(shared.prepare(S::NAME, &key, ctx.meta(), &effects, &mut commit)?)
                }
                None => None,
            };
            match shared
                .store
                .commit(S::NAME, &key, commit)
                .await
                .map_err(|e| e.to_string())?
            {
                Committed::Conflict => {
                    bump(&stats.conflicts);
                    continue;
                }
                Committed::Written(_) => {}
            }
            bump(&stats.steps);
            if expected_version.is_none() {
                bump(&stats.started);
            }
            match status {
                Status::Running => {}
                Status::Completed => bump(&stats.completed),
                Status::Compensated(_) => bump(&stats.compensated),
            }
            let mut failures = Vec::new();
            if let (Some(metas), Some(outbox)) = (durable, outbox) {
                // Published now with the ids they were committed with; the relay delivers
                // what this process does not get to (and the scheduled ones, when due).
                let mut delivered = Vec::new();
                for (meta, follow_up) in metas.into_iter().zip(effects.publish) {
                    let id = meta.event_id();
                    let report = ctx.follow_ups().publish_as(meta, follow_up).await;
                    if report.refusal() != Some(&crate::Refusal::ShutDown) {
                        delivered.push(id);
                    }
                    if let Err(error) = report.into_result() {
                        failures.push(error.to_string());
                    }
                }
                finish(outbox, &delivered).await;
            } else {
                let instance = (S::NAME, key.clone());
                if status.has_ended() {
                    shared.timers.cancel(&instance);
                } else {
                    for (delay, timeout) in effects.schedule {
                        shared.schedule(&instance, delay, timeout, ctx.detach());
                    }
                }
                for follow_up in effects.publish {
                    if let Err(error) = ctx.publish_boxed(follow_up).await.into_result() {
                        failures.push(error.to_string());
                    }
                }
            }
            return match failures.is_empty() {
                true => Ok(()),
                // Committed: the step is done and will not run again; say what went wrong.
                false => Err(format!(
                    "saga `{}` instance `{key}` committed, but publishing failed: {}",
                    S::NAME,
                    failures.join("; ")
                )),
            };
        }
        Err(format!(
            "saga `{}` instance `{key}`: gave up after {MAX_ATTEMPTS} conflicting commits",
            S::NAME
        ))
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What the steps of all sagas of one [`Sagas`] share.
pub(crate) struct Shared {
    store: Arc<dyn SagaStore>,
    stats: FxHashMap<&'static str, Arc<Counters>>,
    timers: Timers,
    /// This process, as the CloudEvents `instanceid` of what it writes to an outbox.
    instance: String,
    /// How long an outbox entry published right after its commit waits before the relay
    /// takes it for one its process did not deliver.
    redeliver_after: Duration,
}

impl Shared {
    /// The step's effects as outbox entries of `commit`, each published one with the metadata
    /// (and so the id) it will be published with. Only `#[event(distributed)]` events can be
    /// kept.
    fn prepare(
        &self,
        saga: &'static str,
        key: &str,
        parent: &EventMeta,
        effects: &Effects,
        commit: &mut Commit,
    ) -> Result<Vec<EventMeta>, String> {
        let now = SystemTime::now();
        let source = format!("saga/{saga}");
        let entry = |event: &dyn ErasedEvent, deliver_at, scheduled| {
            let meta = EventMeta::child(parent, event.event_type());
            meta.stamp();
            let payload =
                crate::wire::encode(event, &meta, &source, &self.instance).map_err(|e| {
                    format!(
                    "saga `{saga}` instance `{key}`: a durable store keeps what a step publishes, \
                     so it must be an `#[event(distributed)]` event: {e}"
                )
                })?;
            let outbox =
                OutboxEntry::new(meta.event_id(), (saga, key), payload, deliver_at, scheduled);
            Ok::<_, String>((meta, outbox))
        };
        let mut metas = Vec::new();
        for event in &effects.publish {
            let (meta, outbox) = entry(&**event, now + self.redeliver_after, false)?;
            commit.outbox.push(outbox);
            metas.push(meta);
        }
        // A step that ends its saga schedules nothing (as on the in-memory store).
        if !effects.status.has_ended() {
            for (delay, event) in &effects.schedule {
                let (_, outbox) = entry(&**event, now + *delay, true)?;
                commit.outbox.push(outbox);
            }
        }
        Ok(metas)
    }

    fn stats(&self, saga: &str) -> &Counters {
        &self.stats[saga]
    }

    /// Publishes `event` after `delay` unless the instance has ended by then.
    fn schedule(
        &self,
        instance: &(&'static str, String),
        delay: Duration,
        event: Box<dyn ErasedEvent>,
        ctx: OwnedContext,
    ) {
        let store = self.store.clone();
        let (saga, key) = instance.clone();
        let counters = self.stats[saga].clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            match store.load(saga, &key).await {
                Ok(Some(found)) if found.status.has_ended() => {
                    bump(&counters.timeouts_dropped);
                    return;
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(saga, %key, %error, "could not check the saga before its timeout; publishing it anyway");
                }
            }
            bump(&counters.timeouts_fired);
            let report = ctx.publish_boxed(event).await;
            if let Err(error) = report.into_result() {
                tracing::warn!(saga, %key, %error, "saga timeout event failed");
            }
        });
        self.timers.add(instance, task.abort_handle());
    }
}

/// The pending timeouts of each instance, cancelled when it ends or the sagas stop.
#[derive(Default)]
struct Timers(Mutex<FxHashMap<(&'static str, String), Vec<AbortHandle>>>);

impl Timers {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, FxHashMap<(&'static str, String), Vec<AbortHandle>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, instance: &(&'static str, String), timer: AbortHandle) {
        let mut timers = self.lock();
        let pending = timers.entry(instance.clone()).or_default();
        pending.retain(|t| !t.is_finished());
        pending.push(timer);
    }

    fn cancel(&self, instance: &(&'static str, String)) {
        for timer in self.lock().remove(instance).into_iter().flatten() {
            timer.abort();
        }
    }

    fn cancel_all(&self) {
        for timer in self.lock().drain().flat_map(|(_, t)| t) {
            timer.abort();
        }
    }
}

#[derive(Default, Debug)]
struct Counters {
    started: AtomicU64,
    steps: AtomicU64,
    completed: AtomicU64,
    compensated: AtomicU64,
    duplicates: AtomicU64,
    conflicts: AtomicU64,
    unmatched: AtomicU64,
    after_end: AtomicU64,
    timeouts_fired: AtomicU64,
    timeouts_dropped: AtomicU64,
    relayed: AtomicU64,
}

/// What one saga did since [`SagasBuilder::start`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SagaStats {
    /// Instances created.
    pub started: u64,
    /// Steps committed.
    pub steps: u64,
    /// Instances completed.
    pub completed: u64,
    /// Instances compensated.
    pub compensated: u64,
    /// Events an instance had already processed (a redelivery), ignored.
    pub duplicates: u64,
    /// Commits that lost a race for their instance and ran again.
    pub conflicts: u64,
    /// Events for an instance that does not exist, which cannot start one: ignored.
    pub unmatched: u64,
    /// Events for an instance that ended: ignored.
    pub after_end: u64,
    /// Scheduled events published.
    pub timeouts_fired: u64,
    /// Scheduled events not published because the instance had ended.
    pub timeouts_dropped: u64,
    /// Events a step published that this process's outbox relay delivered, because the
    /// process that committed them did not.
    pub relayed: u64,
}

impl From<&Counters> for SagaStats {
    fn from(c: &Counters) -> Self {
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        SagaStats {
            started: get(&c.started),
            steps: get(&c.steps),
            completed: get(&c.completed),
            compensated: get(&c.compensated),
            duplicates: get(&c.duplicates),
            conflicts: get(&c.conflicts),
            unmatched: get(&c.unmatched),
            after_end: get(&c.after_end),
            timeouts_fired: get(&c.timeouts_fired),
            timeouts_dropped: get(&c.timeouts_dropped),
            relayed: get(&c.relayed),
        }
    }
}

/// The sagas of one bus: their steps subscribed as handlers, their scheduled events, their
/// numbers. Dropping it unsubscribes the steps and cancels the scheduled events.
#[must_use = "dropping `Sagas` unsubscribes its steps"]
pub struct Sagas {
    shared: Arc<Shared>,
    relay: Option<AbortHandle>,
    _subscriptions: Vec<Subscription>,
    /// The sagas in the bus's topology, while they run.
    _in_topology: Contributed,
}

impl Sagas {
    /// A builder on the in-memory store.
    pub fn builder() -> SagasBuilder {
        SagasBuilder {
            store: Arc::new(MemoryStore::new()),
            sagas: Vec::new(),
            problems: Vec::new(),
            relay_every: Duration::from_millis(250),
            redeliver_after: Duration::from_secs(5),
        }
    }

    /// What the saga named `saga` did; `None` for a name this does not run.
    pub fn stats(&self, saga: &str) -> Option<SagaStats> {
        self.shared.stats.get(saga).map(|c| SagaStats::from(&**c))
    }

    /// The names of the sagas it runs, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.shared.stats.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// The store it keeps instances in.
    pub fn store(&self) -> &Arc<dyn SagaStore> {
        &self.shared.store
    }
}

impl Drop for Sagas {
    fn drop(&mut self) {
        self.shared.timers.cancel_all();
        if let Some(relay) = &self.relay {
            relay.abort();
        }
    }
}

/// Removes delivered entries from the outbox (nothing to do, no round trip, when none were).
async fn finish(outbox: &dyn super::Outbox, delivered: &[EventId]) {
    if delivered.is_empty() {
        return;
    }
    if let Err(error) = outbox.delivered(delivered).await {
        tracing::warn!(%error, "saga outbox: delivered, but not removed; they will be delivered again (same ids)");
    }
}

/// How long a relay holds the entries it claimed before another may take them.
const LEASE: Duration = Duration::from_secs(30);
/// Entries claimed at once.
const CLAIM: usize = 64;

/// Delivers the outbox entries that are due, in this process, while the sagas run: scheduled
/// events, and events whose committing process died before publishing them. Any number of
/// processes may relay one outbox; a claim is a lease.
async fn relay(shared: Arc<Shared>, bus: Arc<dyn FollowUps>, every: Duration) {
    let outbox = shared
        .store
        .outbox()
        .expect("started only for a store with an outbox");
    loop {
        let entries = match outbox.claim(CLAIM, LEASE).await {
            Ok(entries) => entries,
            Err(error) => {
                tracing::warn!(%error, "saga outbox: claim failed; trying again");
                Vec::new()
            }
        };
        let full = entries.len() == CLAIM;
        let mut delivered = Vec::new();
        for entry in entries {
            let counters = shared.stats.get(entry.saga.as_str());
            let decoded = crate::wire::Envelope::parse(entry.payload.as_bytes())
                .and_then(crate::wire::Envelope::decode);
            let (event, meta) = match decoded {
                // Our own event, not one received: the bridge may send it on.
                Ok(incoming) => incoming.into_event(None),
                Err(error) => {
                    // Left in place: a build of this service that knows the type may take it.
                    tracing::error!(saga = %entry.saga, key = %entry.key, id = %entry.id, %error, "saga outbox entry cannot be decoded here");
                    continue;
                }
            };
            let report = bus.publish_as(meta, event.0).await;
            if report.refusal() == Some(&crate::Refusal::ShutDown) {
                // The bus is gone: what is left of the claim falls due again when the lease
                // runs out, for another process.
                finish(outbox, &delivered).await;
                return;
            }
            if let Err(error) = report.into_result() {
                tracing::warn!(saga = %entry.saga, key = %entry.key, %error, "relayed saga event failed in a handler");
            }
            if let Some(counters) = counters {
                bump(if entry.scheduled {
                    &counters.timeouts_fired
                } else {
                    &counters.relayed
                });
            }
            delivered.push(entry.id);
        }
        finish(outbox, &delivered).await;
        if !full {
            tokio::time::sleep(every).await;
        }
    }
}

impl fmt::Debug for Sagas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sagas")
            .field("sagas", &self.names())
            .finish()
    }
}

/// A saga ready to subscribe: its name and steps.
struct Declared {
    name: &'static str,
    steps: Vec<DeclaredStep>,
}

struct DeclaredStep {
    event_type: &'static EventType,
    starts: bool,
    subscribe: Subscribe,
}

/// Chooses the store and the sagas; [`start`](Self::start) subscribes them to a bus.
#[must_use = "a builder does nothing until `start`"]
pub struct SagasBuilder {
    store: Arc<dyn SagaStore>,
    sagas: Vec<Declared>,
    problems: Vec<String>,
    relay_every: Duration,
    redeliver_after: Duration,
}

impl SagasBuilder {
    /// Keeps instances in `store` instead of memory.
    pub fn store(mut self, store: impl SagaStore) -> Self {
        self.store = Arc::new(store);
        self
    }

    /// With a store that has an outbox: how often the relay looks for due entries (scheduled
    /// events, and events whose committing process did not publish them). Default 250 ms.
    pub fn relay_every(mut self, interval: Duration) -> Self {
        self.relay_every = interval;
        self
    }

    /// With a store that has an outbox: how long an event a step published waits, after its
    /// commit, before a relay publishes it in place of a process that died first. Default 5 s;
    /// a process that lives publishes it at once and removes it.
    pub fn redeliver_after(mut self, grace: Duration) -> Self {
        self.redeliver_after = grace;
        self
    }

    /// Runs saga `S`.
    pub fn saga<S: Saga>(mut self) -> Self {
        if self.sagas.iter().any(|s| s.name == S::NAME) {
            self.problems.push(format!(
                "saga `{}` is added twice (or two sagas share the name)",
                S::NAME
            ));
            return self;
        }
        let mut steps = Steps { steps: Vec::new() };
        S::steps(&mut steps);
        let steps = steps
            .steps
            .into_iter()
            .map(|step| DeclaredStep {
                event_type: step.event_type,
                starts: step.starts,
                subscribe: step.subscribe,
            })
            .collect();
        self.sagas.push(Declared {
            name: S::NAME,
            steps,
        });
        self
    }

    /// Runs every saga that `#[saga]` registered at link time.
    pub fn with_registered(self) -> Self {
        let mut registered: Vec<&SagaRegistration> =
            inventory::iter::<SagaRegistration>().collect();
        // inventory promises no order: sort, so that errors and subscriptions are stable.
        registered.sort_by_key(|r| (r.name, r.module_path));
        if registered.is_empty() {
            let mut builder = self;
            builder
                .problems
                .push("`with_registered` found no `#[saga]` linked into this binary".to_owned());
            return builder;
        }
        registered
            .into_iter()
            .fold(self, |builder, r| (r.add)(builder))
    }

    /// Subscribes the steps of every saga to `bus`. Fails, naming each problem, when a saga
    /// was added twice, has no step that starts it, or has two steps for one event type.
    pub fn start(self, bus: &EventBus) -> Result<Sagas, SagaError> {
        let mut problems = self.problems;
        for saga in &self.sagas {
            if !saga.steps.iter().any(|step| step.starts) {
                problems.push(format!("saga `{}` has no `#[start]` step", saga.name));
            }
            let mut seen = Vec::new();
            for DeclaredStep { event_type, .. } in &saga.steps {
                if seen.contains(&event_type.type_id()) {
                    problems.push(format!(
                        "saga `{}` has two steps for `{}`",
                        saga.name,
                        event_type.name()
                    ));
                }
                seen.push(event_type.type_id());
            }
        }
        let runtime = tokio::runtime::Handle::try_current();
        if self.store.outbox().is_some() && runtime.is_err() {
            problems.push(
                "a store with an outbox needs its relay task: start the sagas inside a tokio runtime"
                    .to_owned(),
            );
        }
        if !problems.is_empty() {
            return Err(SagaError { problems });
        }
        let shared = Arc::new(Shared {
            instance: EventId::new().to_string(),
            redeliver_after: self.redeliver_after,
            store: self.store,
            stats: self
                .sagas
                .iter()
                .map(|s| (s.name, Arc::default()))
                .collect(),
            timers: Timers::default(),
        });
        let in_topology = bus.engine().contribute(self.sagas.iter().map(|saga| {
            let names = |starts: bool| {
                let steps = saga.steps.iter().filter(move |s| s.starts == starts);
                steps.map(|s| s.event_type.name().to_owned()).collect()
            };
            Contribution::Saga(SagaNode::new(saga.name, names(true), names(false)))
        }));
        let subscriptions = self
            .sagas
            .into_iter()
            .flat_map(|saga| saga.steps)
            .map(|step| (step.subscribe)(bus, &shared))
            .collect();
        let relay = match (shared.store.outbox(), runtime) {
            (Some(_), Ok(runtime)) => Some(
                runtime
                    .spawn(relay(shared.clone(), bus.follow_ups(), self.relay_every))
                    .abort_handle(),
            ),
            _ => None,
        };
        Ok(Sagas {
            shared,
            relay,
            _subscriptions: subscriptions,
            _in_topology: in_topology,
        })
    }
}

impl fmt::Debug for SagasBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.sagas.iter().map(|s| s.name).collect();
        f.debug_struct("SagasBuilder")
            .field("sagas", &names)
            .finish()
    }
}

/// Why [`SagasBuilder::start`] refused: every problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaError {
    problems: Vec<String>,
}

impl SagaError {
    /// Each problem, in words.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }
}

impl fmt::Display for SagaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sagas not started: {}", self.problems.join("; "))
    }
}

impl std::error::Error for SagaError {}
