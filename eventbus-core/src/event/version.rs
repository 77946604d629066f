//! Versions of one event: an upcaster turns version `n` of an event into version `n + 1`, the
//! bus composes them into chains at build time, and an event of an old version travels as an
//! [`Upcast`]: the original with every newer version built from it, so that a handler of
//! any of those versions (or of their ancestors) receives its own view.

use super::{ErasedEvent, Event, EventPart, EventType, SmallEvent};
use rustc_hash::{FxHashMap, FxHashSet};
use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;

/// An upcaster as `#[upcast]` submits it at link time.
#[doc(hidden)]
pub struct UpcasterRegistration {
    /// `None` only when the type is not an event (compilation fails then anyway).
    pub(crate) from: fn() -> Option<&'static EventType>,
    pub(crate) to: fn() -> Option<&'static EventType>,
    pub(crate) convert: fn(&EventPart) -> Upcasted,
    /// The fn's full path.
    pub(crate) name: &'static str,
    pub(crate) file: &'static str,
    pub(crate) line: u32,
}

impl UpcasterRegistration {
    #[doc(hidden)]
    pub const fn new(
        from: fn() -> Option<&'static EventType>,
        to: fn() -> Option<&'static EventType>,
        convert: fn(&EventPart) -> Upcasted,
        name: &'static str,
        file: &'static str,
        line: u32,
    ) -> Self {
        UpcasterRegistration {
            from,
            to,
            convert,
            name,
            file,
            line,
        }
    }
}

impl fmt::Debug for UpcasterRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UpcasterRegistration({})", self.name)
    }
}

inventory::collect!(UpcasterRegistration);

/// The newer version an upcaster made, type-erased (used by generated code).
#[doc(hidden)]
pub struct Upcasted(SmallEvent);

impl fmt::Debug for Upcasted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Upcasted({})", self.0.event_type())
    }
}

/// An `#[upcast]` fn as its expansion names it: a local type that ties the fn to both of its
/// versions (used by generated code). Naming the two types once, in this impl, makes an
/// upcaster whose types are not events one error, at the type.
#[doc(hidden)]
pub trait UpcastFn: 'static {
    type Old: Event;
    type New: Event;
    fn upcast(old: &Self::Old) -> Self::New;
}

/// Calls a typed upcaster on an erased old event (used by generated code).
#[doc(hidden)]
pub fn upcast_erased<U: UpcastFn>(part: &EventPart) -> Upcasted {
    let old = super::event_part::<U::Old>(part);
    Upcasted(super::OwnedEvent::small(U::upcast(old)))
}

/// How an upcaster is called: a fn pointer for `#[upcast]` fns (one indirect call), a
/// shared closure for those given to the builder.
#[derive(Clone)]
enum Convert {
    Fn(fn(&EventPart) -> Upcasted),
    Closure(Arc<dyn Fn(&EventPart) -> Upcasted + Send + Sync>),
}

impl Convert {
    #[inline]
    fn call(&self, old: &EventPart) -> Upcasted {
        match self {
            Convert::Fn(f) => f(old),
            Convert::Closure(f) => f(old),
        }
    }
}

/// One upcaster, from wherever it came (`#[upcast]` or the builder).
#[derive(Clone)]
pub(crate) struct Upcaster {
    pub(crate) from: &'static EventType,
    pub(crate) to: &'static EventType,
    convert: Convert,
    /// The fn's path, or the builder call that added it.
    pub(crate) name: String,
    /// `file:line` of its definition, when known.
    pub(crate) location: Option<String>,
}

impl Upcaster {
    /// A closure given to the builder.
    pub(crate) fn of_fn<Old: Event, New: Event>(
        f: impl Fn(&Old) -> New + Send + Sync + 'static,
    ) -> Self {
        Upcaster {
            from: Old::TYPE,
            to: New::TYPE,
            convert: Convert::Closure(Arc::new(move |part| {
                Upcasted(super::OwnedEvent::small(f(super::event_part::<Old>(part))))
            })),
            name: format!(
                "EventBusBuilder::upcaster::<{}, {}>",
                Old::TYPE.rust_name(),
                New::TYPE.rust_name()
            ),
            location: None,
        }
    }

    /// Every `#[upcast]` fn linked into the binary, sorted by name.
    pub(crate) fn registered() -> Vec<Upcaster> {
        let mut all: Vec<Upcaster> = inventory::iter::<UpcasterRegistration>
            .into_iter()
            .filter_map(|r| {
                Some(Upcaster {
                    from: (r.from)()?,
                    to: (r.to)()?,
                    convert: Convert::Fn(r.convert),
                    name: r.name.to_owned(),
                    location: Some(format!("{}:{}", r.file, r.line)),
                })
            })
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// What it is called in errors: its name and where it is.
    fn describe(&self) -> String {
        match &self.location {
            Some(location) => format!("{} ({location})", self.name),
            None => self.name.clone(),
        }
    }
}

impl fmt::Debug for Upcaster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upcaster")
            .field("name", &self.name)
            .field("from", &self.from.to_string())
            .field("to", &self.to.to_string())
            .finish()
    }
}

/// A type named in a version error: `orders.placed v1 (shop::OrderPlacedV1)`.
fn describe(ty: &EventType) -> String {
    format!("{ty} ({})", ty.rust_name())
}

/// What is wrong with the upcasters of a bus; `BuildProblem` carries each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum VersionProblem {
    /// An upcaster whose target is not the next version of the same event.
    NotNextVersion {
        upcaster: String,
        from: String,
        to: String,
    },
    /// Two upcasters from one type.
    Duplicate {
        from: String,
        first: String,
        second: String,
    },
    /// Upcasters that lead back to where they started.
    Cycle { types: Vec<String> },
    /// A version with no way to the next one, though a newer version is known.
    Gap {
        name: String,
        stuck_at: String,
        newest: u32,
    },
}

/// One level of an upcast event: which version holds it, and where in that version's lineage.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Level {
    pub(crate) ty: &'static EventType,
    /// Index into the chain's versions: 0 is the original, the last the current version.
    version: usize,
    /// The level within that version's lineage.
    level: usize,
    /// The dispatch order among the levels: each version's own type first, the current
    /// version's first, then their parents likewise.
    pub(crate) rank: usize,
}

/// The way from one old version to the current one.
#[derive(Debug)]
pub(crate) struct Chain {
    upcasters: Box<[Upcaster]>,
    /// Every type an upcast event of this origin can be viewed as, by level: level 0 is the
    /// original itself (so code that reads an event's own type finds it there), then the rest.
    /// A type shared by several versions (a common parent) appears once, from the newest.
    pub(crate) levels: Box<[Level]>,
}

impl Chain {
    fn new(upcasters: Vec<Upcaster>) -> Self {
        let versions: Vec<&'static EventType> = std::iter::once(upcasters[0].from)
            .chain(upcasters.iter().map(|u| u.to))
            .collect();
        // Every (version, level), in dispatch order: by level, then the newest version first.
        let mut all: Vec<(usize, usize, &'static EventType)> = versions
            .iter()
            .enumerate()
            .flat_map(|(version, ty)| {
                ty.lineage()
                    .enumerate()
                    .map(move |(level, ty)| (level, version, ty))
            })
            .collect();
        all.sort_by_key(|&(level, version, _)| (level, std::cmp::Reverse(version)));
        let mut seen = FxHashSet::default();
        let mut ranked: Vec<Level> = Vec::new();
        for (level, version, ty) in all {
            if seen.insert(ty.type_id()) {
                let rank = ranked.len();
                ranked.push(Level {
                    ty,
                    version,
                    level,
                    rank,
                });
            }
        }
        // The original first: the wire and middleware read an event's own type at level 0.
        let original = ranked
            .iter()
            .position(|l| l.version == 0 && l.level == 0)
            .expect("the original's own type is never shared");
        let first = ranked.remove(original);
        ranked.insert(0, first);
        Chain {
            upcasters: upcasters.into(),
            levels: ranked.into(),
        }
    }
}

impl Chain {
    /// Whether the chain is a single upcaster.
    pub(crate) fn is_one_step(&self) -> bool {
        self.upcasters.len() == 1
    }

    /// Whether `level` is a part of the newest version (not a type only older ones have).
    pub(crate) fn is_newest_at(&self, level: usize) -> bool {
        self.levels[level].version == self.upcasters.len()
    }

    /// The version the chain ends at.
    #[cfg_attr(not(feature = "wire"), allow(dead_code))]
    pub(crate) fn newest(&self) -> &'static EventType {
        self.upcasters[self.upcasters.len() - 1].to
    }

    /// The name of the first upcaster: an `#[upcast]` fn's full path.
    pub(crate) fn first_name(&self) -> &str {
        &self.upcasters[0].name
    }

    /// The version the first upcaster makes.
    pub(crate) fn next_version(&self) -> &'static EventType {
        self.upcasters[0].to
    }

    /// The next version of `original`, made by the first upcaster (inline when small).
    pub(crate) fn upcast_once(&self, original: &dyn ErasedEvent) -> SmallEvent {
        let part = original.part(0).expect("level 0 is the event itself");
        let Upcasted(next) = self.upcasters[0].convert.call(part);
        next
    }
}

/// Every version of the events that have upcasters: their endpoints, and the `known` types
/// that share a name with one (names without upcasters are unrelated types, as they always
/// were). Each type once.
pub(crate) fn versions_of(
    upcasters: &[Upcaster],
    known: impl Iterator<Item = &'static EventType>,
) -> Vec<&'static EventType> {
    let names: FxHashSet<&str> = upcasters.iter().map(|u| u.from.name()).collect();
    let endpoints = upcasters.iter().flat_map(|u| [u.from, u.to]);
    let mut seen = FxHashSet::default();
    endpoints
        .chain(known)
        // (`EventType::type_id` by name: on `&&EventType`, `.type_id()` is `Any`'s, of the
        // reference type.)
        .filter(|ty| names.contains(ty.name()) && seen.insert(EventType::type_id(ty)))
        .collect()
}

/// The chains of one bus, by the type they start from.
#[derive(Debug, Default)]
pub(crate) struct Upcasts {
    chains: FxHashMap<TypeId, Arc<Chain>>,
    /// Every upcaster, sorted by name.
    upcasters: Vec<Upcaster>,
}

impl Upcasts {
    /// Checks the upcasters against each other and against the other known event types, and
    /// composes the chains. `known`: every event type the bus knows of besides the
    /// upcasters' own (those it handles, and those it can receive).
    pub(crate) fn resolve(
        upcasters: Vec<Upcaster>,
        known: impl Iterator<Item = &'static EventType>,
    ) -> Result<Self, Vec<VersionProblem>> {
        let mut problems = Vec::new();
        let mut next: FxHashMap<TypeId, &Upcaster> = FxHashMap::default();
        for upcaster in &upcasters {
            match next.get(&upcaster.from.type_id()) {
                Some(first) => problems.push(VersionProblem::Duplicate {
                    from: describe(upcaster.from),
                    first: first.describe(),
                    second: upcaster.describe(),
                }),
                None => {
                    next.insert(upcaster.from.type_id(), upcaster);
                }
            }
        }

        // Cycles first: each is one mistake, reported once, and its edges are not judged again.
        let mut in_cycle = FxHashSet::default();
        for upcaster in &upcasters {
            let start = upcaster.from.type_id();
            if in_cycle.contains(&start) {
                continue;
            }
            let mut path = vec![start];
            let mut at = next.get(&start).map(|u| u.to);
            while let Some(ty) = at {
                if let Some(back) = path.iter().position(|id| *id == ty.type_id()) {
                    let members = &path[back..];
                    if members.contains(&start) {
                        let mut types: Vec<String> =
                            members.iter().map(|id| describe(next[id].from)).collect();
                        types.sort();
                        in_cycle.extend(members.iter().copied());
                        problems.push(VersionProblem::Cycle { types });
                    }
                    break;
                }
                path.push(ty.type_id());
                at = next.get(&ty.type_id()).map(|u| u.to);
            }
        }
        for upcaster in &upcasters {
            let (from, to) = (upcaster.from, upcaster.to);
            if in_cycle.contains(&from.type_id()) {
                continue;
            }
            if to.name() != from.name() || to.version() != from.version() + 1 {
                problems.push(VersionProblem::NotNextVersion {
                    upcaster: upcaster.describe(),
                    from: describe(from),
                    to: describe(to),
                });
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }

        // Every known version of an upcast event's name, below the newest, must lead to the
        // newest. (Names without upcasters are unrelated types, as they always were.)
        let mut by_name: FxHashMap<&str, Vec<&'static EventType>> = FxHashMap::default();
        for ty in versions_of(&upcasters, known) {
            by_name.entry(ty.name()).or_default().push(ty);
        }
        let mut names: Vec<_> = by_name.into_iter().collect();
        names.sort_by_key(|(name, _)| *name);
        for (name, types) in names {
            let newest = types.iter().map(|t| t.version()).max().unwrap_or(1);
            let mut stuck = FxHashSet::default();
            for ty in types {
                let mut at = ty;
                while let Some(upcaster) = next.get(&at.type_id()) {
                    at = upcaster.to;
                }
                if at.version() < newest && stuck.insert(at.type_id()) {
                    problems.push(VersionProblem::Gap {
                        name: name.to_owned(),
                        stuck_at: describe(at),
                        newest,
                    });
                }
            }
        }
        if !problems.is_empty() {
            problems.sort_by_key(|p| format!("{p:?}"));
            return Err(problems);
        }

        let mut chains = FxHashMap::default();
        for upcaster in &upcasters {
            let mut steps = vec![upcaster.clone()];
            while let Some(step) = next.get(&steps[steps.len() - 1].to.type_id()) {
                steps.push((*step).clone());
            }
            chains.insert(upcaster.from.type_id(), Arc::new(Chain::new(steps)));
        }
        Ok(Upcasts { chains, upcasters })
    }

    /// Every upcaster, sorted by name.
    pub(crate) fn upcasters(&self) -> &[Upcaster] {
        &self.upcasters
    }

    /// The chain from an old version, if `ty` is one.
    #[inline]
    pub(crate) fn chain(&self, ty: &'static EventType) -> Option<&Arc<Chain>> {
        if self.chains.is_empty() {
            return None;
        }
        self.chains.get(&ty.type_id())
    }
}

/// An old version with every newer version built from it; dispatched as one event.
///
/// Read-only to middleware (`part_mut` finds nothing): the newer versions are made from the
/// original when it enters the bus, and a change to one would not reach the others.
pub(crate) struct Upcast<'a> {
    original: Original<'a>,
    /// The next version, stored inline when small (most events): a chain of one allocates
    /// nothing.
    next: Option<SmallEvent>,
    /// The versions after that, for longer chains.
    later: Vec<SmallEvent>,
    chain: ChainRef<'a>,
}

/// Where an upcast event's original lives.
enum Original<'a> {
    /// Owned: the event travels on (through async middleware, a task, a queue).
    Owned(Box<dyn ErasedEvent>),
    /// Borrowed from the publisher for a run to completion right here (the inline path).
    Borrowed(&'a dyn ErasedEvent),
}

enum ChainRef<'a> {
    Shared(Arc<Chain>),
    Borrowed(&'a Chain),
}

impl Upcast<'static> {
    pub(crate) fn owned(original: Box<dyn ErasedEvent>, chain: Arc<Chain>) -> Self {
        Upcast::new(Original::Owned(original), ChainRef::Shared(chain))
    }
}

impl<'a> Upcast<'a> {
    pub(crate) fn borrowed(original: &'a dyn ErasedEvent, chain: &'a Chain) -> Self {
        Upcast::new(Original::Borrowed(original), ChainRef::Borrowed(chain))
    }

    fn new(original: Original<'a>, chain: ChainRef<'a>) -> Self {
        let mut upcast = Upcast {
            original,
            next: None,
            later: Vec::new(),
            chain,
        };
        for index in 0..upcast.chain().upcasters.len() {
            let older = upcast.version(index).part(0);
            let Upcasted(newer) = upcast.chain().upcasters[index]
                .convert
                .call(older.expect("level 0 is the event itself"));
            match upcast.next {
                None => upcast.next = Some(newer),
                Some(_) => upcast.later.push(newer),
            }
        }
        upcast
    }

    fn chain(&self) -> &Chain {
        match &self.chain {
            ChainRef::Shared(chain) => chain,
            ChainRef::Borrowed(chain) => chain,
        }
    }

    /// Version `index` of the chain: 0 is the original.
    fn version(&self, index: usize) -> &dyn ErasedEvent {
        match (index, &self.original) {
            (0, Original::Owned(event)) => &**event,
            (0, Original::Borrowed(event)) => *event,
            (1, _) => &**self.next.as_ref().expect("every version is made in `new`"),
            (n, _) => &*self.later[n - 2],
        }
    }
}

impl ErasedEvent for Upcast<'_> {
    fn event_type(&self) -> &'static EventType {
        self.version(0).event_type()
    }
    fn part(&self, level: usize) -> Option<&EventPart> {
        let at = self.chain().levels.get(level)?;
        self.version(at.version).part(at.level)
    }
    fn part_mut(&mut self, _level: usize) -> Option<&mut EventPart> {
        None
    }
    fn clone_event(&self) -> Option<super::AnyEvent> {
        self.version(0).clone_event()
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        match self.original {
            Original::Owned(event) => event.into_any(),
            // A borrowed upcast lives on the stack of `Engine::run_inline` only; nothing there
            // hands an event back.
            Original::Borrowed(_) => unreachable!("a borrowed upcast is never handed back"),
        }
    }
    fn level_of(&self, type_id: TypeId) -> Option<usize> {
        self.chain()
            .levels
            .iter()
            .position(|l| l.ty.type_id() == type_id)
    }
    fn plain(&self) -> Option<&EventPart> {
        None
    }
    fn own_type_of(&self, ancestor: TypeId) -> Option<(&'static EventType, usize)> {
        let levels = &self.chain().levels;
        let version = levels[self.level_of(ancestor)?].version;
        levels
            .iter()
            .enumerate()
            .find(|(_, l)| l.version == version && l.level == 0)
            .map(|(level, l)| (l.ty, level))
    }
}

impl super::OwnedEvent for Upcast<'static> {
    fn boxed(self) -> Box<dyn ErasedEvent> {
        Box::new(self)
    }
}
