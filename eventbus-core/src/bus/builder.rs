//! [`EventBusBuilder`]: assembles a bus and validates its registrations.

use super::EventBus;
use crate::engine::pipeline::{Layer, Middleware};
use crate::engine::{Config, DispatchMode, Router};
use crate::event::version::{versions_of, Upcaster, Upcasts, VersionProblem};
use crate::event::{Event, EventType};
use crate::handler::{
    all_events, all_handlers, Callable, Context, HandlerEntry, Selection, StateKeys,
};
use crate::report::PublishReport;
use rustc_hash::FxHashMap;
use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Builds an [`EventBus`]; see [`EventBus::builder`].
///
/// ```
/// use eventbus_core::{handler, Event, EventBus, State};
///
/// #[derive(Event)]
/// struct Signup { email: String }
///
/// struct Mailer;
///
/// #[handler(priority = 10)]
/// async fn welcome(e: &Signup, _mailer: State<Mailer>) {}
///
/// // Without the Mailer, build() names the handler and the missing type.
/// let error = EventBus::builder().with_registered_handlers().build().unwrap_err();
/// assert!(error.to_string().contains("welcome"));
/// assert!(error.to_string().contains("Mailer"));
///
/// let bus = EventBus::builder()
///     .with_registered_handlers()
///     .state(Mailer)
///     .max_depth(16)
///     .build()
///     .unwrap();
/// assert_eq!(bus.handlers_for::<Signup>().len(), 1);
/// ```
#[derive(Default)]
#[must_use = "a builder does nothing until `.build()`"]
pub struct EventBusBuilder {
    selection: Selection,
    shared_handler_names: bool,
    duplicate_states: Vec<&'static str>,
    /// Upcasters given here, besides the `#[upcast]` fns linked into the binary.
    upcasters: Vec<Upcaster>,
    config: Config,
}

impl EventBusBuilder {
    /// Takes every `#[handler]` linked into the binary.
    ///
    /// A library crate's handlers are linked only when the application names that crate in
    /// code; a dependency listed in `Cargo.toml` alone is dropped by the linker. Name each
    /// handler crate once with [`link!`](crate::link) (or `use that_crate as _;`).
    /// [`build`](Self::build) fails, saying this, when no handler is linked at all.
    pub fn with_registered_handlers(mut self) -> Self {
        self.selection.add_all();
        self
    }

    /// Takes the `#[handler]` fns (and, for validation, the event types) whose module path is
    /// `module_path` or lies inside it, e.g. `"my_crate::orders"` takes `my_crate::orders` and
    /// `my_crate::orders::email` but not `my_crate::orders_v2`. Call it again to add more.
    /// A package name with hyphens (`order-service`) is taken for its crate name
    /// (`order_service`). [`build`](Self::build) fails, listing the modules that do have
    /// handlers, when one matches none.
    pub fn with_registered_handlers_from(mut self, module_path: &str) -> Self {
        self.selection.add_prefix(module_path);
        self
    }

    /// Takes one `#[handler]` by its full name (e.g. `"shop::billing::book"`): a bus with just
    /// that handler tests it in isolation. `build()` fails if no handler has that name.
    pub fn with_handler(mut self, name: &str) -> Self {
        self.selection.add_name(name);
        self
    }

    /// Lets several registered handlers share one name (`#[handler(name = "..")]`). Without it,
    /// two handlers of one name fail [`build`](Self::build), naming both definitions: a
    /// handler's name is how reports, `with_handler` and tracing tell it apart.
    pub fn allow_shared_handler_names(mut self) -> Self {
        self.shared_handler_names = true;
        self
    }

    /// Gives handlers a shared `T`, taken as a `State<T>` parameter.
    pub fn state<T: Any + Send + Sync>(self, state: T) -> Self {
        self.state_arc(Arc::new(state))
    }

    /// Like [`state`](Self::state), for a value the caller keeps a handle to.
    pub fn state_arc<T: Any + Send + Sync>(mut self, state: Arc<T>) -> Self {
        let name = std::any::type_name::<T>();
        if self
            .config
            .states
            .insert(TypeId::of::<T>(), (name, state))
            .is_some()
        {
            self.duplicate_states.push(name);
        }
        self
    }

    /// The event-storm guard: a follow-up event published by a handler is one level deeper than
    /// its cause, and one deeper than `max_depth` is refused. Default 32.
    pub fn max_depth(mut self, max_depth: u32) -> Self {
        self.config.max_depth = max_depth;
        self
    }

    /// Adds a middleware that runs for every publish; middleware runs in the order added. A
    /// [`SyncMiddleware`](crate::middleware::SyncMiddleware) goes in through
    /// [`middleware::sync`](crate::middleware::sync). See [`middleware`](crate::middleware).
    pub fn middleware(mut self, middleware: impl Middleware) -> Self {
        self.config
            .layers
            .push(Layer::new(Arc::new(middleware), None));
        self
    }

    /// Adds a middleware that runs only for `E` and the events derived from it.
    pub fn middleware_for<E: Event>(mut self, middleware: impl Middleware) -> Self {
        self.config
            .layers
            .push(Layer::new(Arc::new(middleware), Some(E::TYPE)));
        self
    }

    /// How one publish runs its handlers; default [`DispatchMode::Sequential`].
    pub fn dispatch_mode(mut self, mode: DispatchMode) -> Self {
        self.config.mode = mode;
        self
    }

    /// Cancels an async handler still running after `timeout` and reports it as timed out,
    /// unless the handler has its own timeout. Default: none.
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.config.default_timeout = Some(timeout);
        self
    }

    /// Caps emitted events in flight (default 10 000): past it, `emit` fails with
    /// [`EmitErrorKind::Full`](crate::EmitErrorKind::Full) and `emit_wait` waits.
    pub fn max_in_flight(mut self, max_in_flight: usize) -> Self {
        self.config.max_in_flight = max_in_flight.max(1);
        self
    }

    /// Called with every event that reached no handler (Guava's `DeadEvent`), with its
    /// context: `ctx.downcast_ref::<T>()` gives the event. A panic in it is logged and contained.
    pub fn on_dead_event(
        mut self,
        hook: impl for<'a> Fn(Context<'a>) + Send + Sync + 'static,
    ) -> Self {
        self.config.on_dead_event = Some(Arc::new(hook));
        self
    }

    /// Called with the report of every emitted event that was not ok: failures nobody awaited.
    /// Without it they are logged through `tracing`. A panic in it is logged and contained.
    pub fn on_failure(mut self, hook: impl Fn(&PublishReport) + Send + Sync + 'static) -> Self {
        self.config.on_failure = Some(Arc::new(hook));
        self
    }

    /// Declares that `by` (a name: a controller, a job, another service) publishes `E` on
    /// this bus, for its [`topology`](EventBus::topology) and the
    /// [`check`](crate::topology::Topology::check) that every published event is handled.
    pub fn publisher<E: Event>(mut self, by: impl Into<String>) -> Self {
        self.config.publishers.push((E::TYPE, by.into()));
        self
    }

    /// Adds an upcaster from `Old` to `New`, the next version of the same event, as a
    /// closure; `#[upcast]` fns are taken without asking. A handler of `New` then also receives
    /// every `Old`, published here or received from the wire, upcast (see
    /// [`upcast`](crate::upcast)). [`build`](Self::build) checks the chains.
    ///
    /// ```
    /// use eventbus_core::{Event, EventBus};
    ///
    /// #[derive(Event)]
    /// #[event(name = "user.renamed", version = 1)]
    /// struct UserRenamedV1 { name: String }
    ///
    /// #[derive(Event)]
    /// #[event(name = "user.renamed", version = 2)]
    /// struct UserRenamed { first: String, last: String }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let bus = EventBus::builder()
    ///     .upcaster(|old: &UserRenamedV1| {
    ///         let (first, last) = old.name.split_once(' ').unwrap_or((&old.name, ""));
    ///         UserRenamed { first: first.into(), last: last.into() }
    ///     })
    ///     .build()
    ///     .unwrap();
    /// let _sub = bus.subscribe(|e: &UserRenamed| assert_eq!(e.last, "Lovelace"));
    /// let report = bus.publish(UserRenamedV1 { name: "Ada Lovelace".into() }).await;
    /// assert_eq!(report.handled(), 1);
    /// # }
    /// ```
    pub fn upcaster<Old: Event, New: Event>(
        mut self,
        upcast: impl Fn(&Old) -> New + Send + Sync + 'static,
    ) -> Self {
        self.upcasters.push(Upcaster::of_fn(upcast));
        self
    }

    /// Builds the bus, or reports every problem found: a `State<T>` a handler needs but was not
    /// given, a state given twice, two event types claiming one (name, version), upcasters
    /// that do not fit together (see [`upcast`](crate::upcast)).
    pub fn build(self) -> Result<EventBus, BuildError> {
        let mut problems = Vec::new();
        for name in &self.duplicate_states {
            problems.push(BuildProblem::DuplicateState {
                state: (*name).to_owned(),
            });
        }

        for name in self.selection.unknown_names() {
            let renamed_to = all_handlers()
                .find(|r| r.fn_path == name)
                .map(|r| r.name.to_owned());
            problems.push(BuildProblem::UnknownHandler {
                name: name.to_owned(),
                renamed_to,
                known: sorted_unique(all_handlers().map(|r| r.name)),
            });
        }
        if self.selection.wants_registered() && all_handlers().next().is_none() {
            problems.push(BuildProblem::NoRegisteredHandlers);
        } else {
            for prefix in self.selection.unmatched_prefixes() {
                problems.push(BuildProblem::UnknownModule {
                    prefix: prefix.to_owned(),
                    known: sorted_unique(all_handlers().map(|r| r.module_path)),
                });
            }
        }

        let mut upcasters = Upcaster::registered();
        upcasters.extend(self.upcasters);
        // The versions of an upcast event's name, wherever they are declared.
        let versioned = versions_of(&upcasters, all_events());
        let upcasts = match Upcasts::resolve(upcasters, all_events()) {
            Ok(upcasts) => upcasts,
            Err(found) => {
                problems.extend(found.into_iter().map(BuildProblem::from));
                Upcasts::default()
            }
        };

        let router = Router::new(upcasts);
        let registrations = self.selection.handlers();
        if !self.shared_handler_names {
            // Sorted by name: two of one name sit side by side.
            for pair in registrations.windows(2) {
                if let [first, second] = pair {
                    if first.name == second.name {
                        problems.push(BuildProblem::DuplicateHandlerName {
                            name: first.name.to_owned(),
                            first: format!("{}:{}", first.file, first.line),
                            second: format!("{}:{}", second.file, second.line),
                        });
                    }
                }
            }
        }
        let handled = registrations.iter().flat_map(|r| r.event.lineage());
        problems.extend(name_clashes(
            (self.selection.events().into_iter())
                .chain(handled)
                .chain(versioned),
        ));
        for registration in &registrations {
            let mut keys = StateKeys::new();
            (registration.declare_states)(&mut keys);
            let mut states = Vec::with_capacity(keys.len());
            for key in &keys {
                match self.config.states.get(&key.type_id) {
                    Some((_, state)) => states.push(Arc::clone(state)),
                    None => problems.push(BuildProblem::MissingState {
                        handler: registration.name.to_owned(),
                        state: key.type_name.to_owned(),
                    }),
                }
            }
            if states.len() == keys.len() {
                router.add(HandlerEntry {
                    id: 0,
                    name: registration.name.into(),
                    priority: registration.priority,
                    event: registration.event,
                    registered: true,
                    callable: Callable::of_fn(registration.call, states.into()),
                    policy: registration.policy.to_policy(),
                    location: Some((registration.file, registration.line)),
                    publishes: registration.publishes.to_vec(),
                    key: None,
                });
            }
        }

        if problems.is_empty() {
            Ok(EventBus::from_parts(router, self.config))
        } else {
            Err(BuildError { problems })
        }
    }
}

fn sorted_unique(names: impl Iterator<Item = &'static str>) -> Vec<String> {
    let mut names: Vec<String> = names.map(str::to_owned).collect();
    names.sort();
    names.dedup();
    names
}

/// Pairs of distinct types that share a (name, version).
fn name_clashes(types: impl Iterator<Item = &'static EventType>) -> Vec<BuildProblem> {
    let mut by_key: FxHashMap<(&str, u32), &'static EventType> = FxHashMap::default();
    let mut seen = rustc_hash::FxHashSet::default();
    let mut problems = Vec::new();
    for ty in types {
        if !seen.insert(ty.type_id()) {
            continue;
        }
        match by_key.get(&(ty.name(), ty.version())) {
            Some(first) => problems.push(BuildProblem::EventNameClash {
                name: ty.name().to_owned(),
                version: ty.version(),
                first: first.rust_name().to_owned(),
                second: ty.rust_name().to_owned(),
            }),
            None => {
                by_key.insert((ty.name(), ty.version()), ty);
            }
        }
    }
    problems
}

impl fmt::Debug for EventBusBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBusBuilder")
            .field("selection", &self.selection)
            .field(
                "states",
                &self
                    .config
                    .states
                    .values()
                    .map(|(name, _)| name)
                    .collect::<Vec<_>>(),
            )
            .field("max_depth", &self.config.max_depth)
            .field(
                "middleware",
                &self
                    .config
                    .layers
                    .iter()
                    .map(|l| &*l.name)
                    .collect::<Vec<_>>(),
            )
            .field("mode", &self.config.mode)
            .finish()
    }
}

/// Why [`EventBusBuilder::build`] failed: every problem found, each naming its culprits.
#[derive(Clone, Debug)]
pub struct BuildError {
    problems: Vec<BuildProblem>,
}

impl BuildError {
    /// Every problem found.
    pub fn problems(&self) -> &[BuildProblem] {
        &self.problems
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot build the event bus:")?;
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for BuildError {}

/// One problem found by [`EventBusBuilder::build`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildProblem {
    /// A handler takes `State<T>` but the builder was given no `T`.
    MissingState {
        /// The handler's full name.
        handler: String,
        /// The missing type.
        state: String,
    },
    /// The builder was given two states of one type.
    DuplicateState {
        /// The type given twice.
        state: String,
    },
    /// `with_handler` named a handler that is not registered.
    UnknownHandler {
        /// The name asked for.
        name: String,
        /// When `name` is the path of a fn registered under another `name = ".."`: that name.
        renamed_to: Option<String>,
        /// The names of the registered handlers.
        known: Vec<String>,
    },
    /// Registered handlers were asked for, but none is linked into the binary.
    NoRegisteredHandlers,
    /// `with_registered_handlers_from` named a module that holds no handler.
    UnknownModule {
        /// The module path asked for (a package name's hyphens read as underscores).
        prefix: String,
        /// The modules that hold handlers.
        known: Vec<String>,
    },
    /// Two registered handlers share a name (and sharing was not allowed).
    DuplicateHandlerName {
        /// The name.
        name: String,
        /// One definition, as `file:line`.
        first: String,
        /// The other definition, as `file:line`.
        second: String,
    },
    /// Two event types claim one (name, version).
    EventNameClash {
        /// The contested name.
        name: String,
        /// The contested version.
        version: u32,
        /// One claimant's Rust type.
        first: String,
        /// The other claimant's Rust type.
        second: String,
    },
    /// An upcaster does not lead to the next version of its event (`v{n}` to `v{n+1}` of the
    /// same name).
    UpcasterSkipsVersion {
        /// The upcaster, with where it is defined.
        upcaster: String,
        /// Its source type: `name vN (RustType)`.
        from: String,
        /// Its target type.
        to: String,
    },
    /// Two upcasters start from one type.
    DuplicateUpcaster {
        /// The type: `name vN (RustType)`.
        from: String,
        /// One upcaster, with where it is defined.
        first: String,
        /// The other.
        second: String,
    },
    /// Upcasters that lead back to where they started.
    UpcastCycle {
        /// The types on the cycle: `name vN (RustType)`, sorted.
        types: Vec<String>,
    },
    /// A version of an event has no upcaster to the next, though a newer version exists:
    /// its events would never reach handlers of the newest.
    VersionGap {
        /// The event name.
        name: String,
        /// The version the way up stops at: `name vN (RustType)`.
        stuck_at: String,
        /// The newest version known.
        newest: u32,
    },
}

impl From<VersionProblem> for BuildProblem {
    fn from(problem: VersionProblem) -> Self {
        match problem {
            VersionProblem::NotNextVersion { upcaster, from, to } => {
                BuildProblem::UpcasterSkipsVersion { upcaster, from, to }
            }
            VersionProblem::Duplicate {
                from,
                first,
                second,
            } => BuildProblem::DuplicateUpcaster {
                from,
                first,
                second,
            },
            VersionProblem::Cycle { types } => BuildProblem::UpcastCycle { types },
            VersionProblem::Gap {
                name,
                stuck_at,
                newest,
            } => BuildProblem::VersionGap {
                name,
                stuck_at,
                newest,
            },
        }
    }
}

/// `a`, `b`, … for an error message; `(none)` when empty.
fn list(names: &[String]) -> String {
    if names.is_empty() {
        return "(none)".to_owned();
    }
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for BuildProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildProblem::MissingState { handler, state } => write!(
                f,
                "handler `{handler}` takes `State<{state}>`, but no `{state}` was given: \
                 add `.state(..)` with one to the builder"
            ),
            BuildProblem::UnknownHandler {
                name,
                renamed_to: Some(renamed),
                ..
            } => write!(
                f,
                "no `#[handler]` is named `{name}`: that fn is registered under its \
                 `name = \"{renamed}\"`; ask for `{renamed}`"
            ),
            BuildProblem::UnknownHandler { name, known, .. } => write!(
                f,
                "no `#[handler]` is named `{name}`: give its full name (its path, or its \
                 `name = \"..\"`); the registered handlers are: {}",
                list(known)
            ),
            BuildProblem::NoRegisteredHandlers => f.write_str(
                "registered handlers were asked for, but no `#[handler]` is linked into this \
                 binary: a crate that only `Cargo.toml` names is dropped by the linker. Name \
                 each crate that holds handlers once in code, e.g. `eventbus_core::link!(orders_domain);` \
                 (or `use orders_domain as _;`) at the root of the application",
            ),
            BuildProblem::UnknownModule { prefix, known } => write!(
                f,
                "no `#[handler]` lies in module `{prefix}`: give a module path (crate names \
                 use `_`, not `-`); the modules with handlers are: {}",
                list(known)
            ),
            BuildProblem::DuplicateHandlerName {
                name,
                first,
                second,
            } => write!(
                f,
                "two handlers are named `{name}`, defined at {first} and at {second}: give \
                 one another `#[handler(name = \"..\")]`, or allow it with \
                 `.allow_shared_handler_names()`"
            ),
            BuildProblem::DuplicateState { state } => {
                write!(f, "`.state(..)` was given two `{state}` values; give one")
            }
            BuildProblem::EventNameClash {
                name,
                version,
                first,
                second,
            } => write!(
                f,
                "event types `{first}` and `{second}` both claim name `{name}` version {version}: \
                 give one of them another `#[event(name = ..)]` or `version`"
            ),
            BuildProblem::UpcasterSkipsVersion { upcaster, from, to } => write!(
                f,
                "upcaster {upcaster} turns {from} into {to}: an upcaster leads to the next \
                 version of the same event (v{{n}} to v{{n+1}}); the bus composes longer ways"
            ),
            BuildProblem::DuplicateUpcaster {
                from,
                first,
                second,
            } => write!(
                f,
                "two upcasters start from {from}: {first} and {second}; keep one"
            ),
            BuildProblem::UpcastCycle { types } => write!(
                f,
                "upcasters lead in a circle through {}: versions only go up",
                types.join(", ")
            ),
            BuildProblem::VersionGap {
                name,
                stuck_at,
                newest,
            } => write!(
                f,
                "`{name}` has a version {newest}, but no upcaster leads on from {stuck_at}: \
                 its events would never reach handlers of v{newest}; add an `#[upcast]` fn \
                 from it to the next version"
            ),
        }
    }
}
