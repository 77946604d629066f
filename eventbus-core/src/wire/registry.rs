//! The link-time registry of distributed event types: (name, version) ↔ codec.

use crate::event::{event_part, AnyEvent, Event, EventPart, EventType};
use rustc_hash::FxHashMap;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;
use std::any::TypeId;
use std::fmt;
use std::sync::OnceLock;

type EncodeFn = fn(&EventPart, &mut Vec<u8>) -> serde_json::Result<()>;
type DecodeFn = fn(&RawValue) -> serde_json::Result<AnyEvent>;

/// A distributed event type, as `#[event(distributed)]` submits it at link time.
pub struct WireRegistration {
    pub(crate) event: &'static EventType,
    pub(crate) encode: EncodeFn,
    pub(crate) decode: DecodeFn,
}

impl WireRegistration {
    #[doc(hidden)]
    pub const fn new(event: &'static EventType, encode: EncodeFn, decode: DecodeFn) -> Self {
        WireRegistration {
            event,
            encode,
            decode,
        }
    }
}

impl fmt::Debug for WireRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WireRegistration({})", self.event)
    }
}

inventory::collect!(WireRegistration);

/// Appends the concrete part of a distributed event as JSON to `out` (used by generated code).
#[doc(hidden)]
pub fn encode_event<T: Event + Serialize>(
    part: &EventPart,
    out: &mut Vec<u8>,
) -> serde_json::Result<()> {
    serde_json::to_writer(out, event_part::<T>(part))
}

/// Deserialises a distributed event (used by generated code).
#[doc(hidden)]
pub fn decode_event<T: Event + DeserializeOwned>(data: &RawValue) -> serde_json::Result<AnyEvent> {
    let event: T = serde_json::from_str(data.get())?;
    Ok(AnyEvent(Box::new(event)))
}

/// Every distributed event type linked into the binary, indexed both ways.
pub(crate) struct Registry {
    by_type: FxHashMap<TypeId, &'static WireRegistration>,
    /// Sorted by version for each name; one registration per (name, version).
    by_name: FxHashMap<&'static str, Vec<&'static WireRegistration>>,
    /// (name, version) claimed by more than one type: (name, version, Rust types).
    pub(crate) clashes: Vec<(String, u32, Vec<&'static str>)>,
}

impl Registry {
    pub(crate) fn by_type(&self, type_id: TypeId) -> Option<&'static WireRegistration> {
        self.by_type.get(&type_id).copied()
    }

    /// The registration for (name, version); else `Err` with the newest version known of
    /// that name (`None`: the name is unknown).
    pub(crate) fn by_name(
        &self,
        name: &str,
        version: u32,
    ) -> Result<&'static WireRegistration, Option<u32>> {
        let versions = self.by_name.get(name).ok_or(None)?;
        versions
            .iter()
            .find(|r| r.event.version() == version)
            .copied()
            .ok_or_else(|| versions.iter().map(|r| r.event.version()).max())
    }
}

pub(crate) fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut all: Vec<&'static WireRegistration> =
            inventory::iter::<WireRegistration>.into_iter().collect();
        all.sort_by_key(|r| (r.event.name(), r.event.version(), r.event.rust_name()));
        let mut registry = Registry {
            by_type: FxHashMap::default(),
            by_name: FxHashMap::default(),
            clashes: Vec::new(),
        };
        for r in all {
            registry.by_type.insert(r.event.type_id(), r);
            let versions = registry.by_name.entry(r.event.name()).or_default();
            match versions
                .iter()
                .find(|v| v.event.version() == r.event.version())
            {
                Some(first) => registry.clashes.push((
                    r.event.name().to_owned(),
                    r.event.version(),
                    vec![first.event.rust_name(), r.event.rust_name()],
                )),
                None => versions.push(r),
            }
        }
        registry
    })
}

/// Whether `T` is `#[event(distributed)]`.
pub fn is_distributed<T: Event>() -> bool {
    registry().by_type(TypeId::of::<T>()).is_some()
}

/// The (name, version) of every distributed event type linked into the binary, sorted.
pub fn registered() -> impl Iterator<Item = (&'static str, u32)> {
    let mut all: Vec<_> = registry()
        .by_type
        .values()
        .map(|r| (r.event.name(), r.event.version()))
        .collect();
    all.sort_unstable();
    all.into_iter()
}
