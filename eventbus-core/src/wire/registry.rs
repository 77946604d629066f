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
type SchemaFn = fn() -> serde_json::Value;

/// A distributed event type, as `#[event(distributed)]` submits it at link time.
pub struct WireRegistration {
    pub(crate) event: &'static EventType,
    pub(crate) encode: EncodeFn,
    pub(crate) decode: DecodeFn,
    /// Its JSON Schema, when the type derives `schemars::JsonSchema` (feature `schema`).
    #[cfg_attr(not(feature = "schema"), allow(dead_code))]
    pub(crate) schema: fn() -> Option<SchemaFn>,
}

impl WireRegistration {
    #[doc(hidden)]
    pub const fn new(
        event: &'static EventType,
        encode: EncodeFn,
        decode: DecodeFn,
        schema: fn() -> Option<SchemaFn>,
    ) -> Self {
        WireRegistration {
            event,
            encode,
            decode,
            schema,
        }
    }
}

/// The derive's probe for `schemars::JsonSchema` (autoref specialisation, like
/// `CloneProbe`): a schema when the type has one and the `schema` feature is on.
#[doc(hidden)]
#[allow(missing_debug_implementations)]
pub struct SchemaProbe<T>(std::marker::PhantomData<T>);

impl<T> SchemaProbe<T> {
    #[doc(hidden)]
    pub const fn new() -> Self {
        SchemaProbe(std::marker::PhantomData)
    }
}

#[doc(hidden)]
pub trait HasSchema {
    fn schema(&self) -> Option<SchemaFn>;
}

#[cfg(feature = "schema")]
impl<T: schemars::JsonSchema> HasSchema for &SchemaProbe<T> {
    fn schema(&self) -> Option<SchemaFn> {
        Some(|| schemars::schema_for!(T).to_value())
    }
}

#[doc(hidden)]
pub trait NoSchema {
    fn schema(&self) -> Option<SchemaFn>;
}

impl<T> NoSchema for &&SchemaProbe<T> {
    fn schema(&self) -> Option<SchemaFn> {
        None
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

    /// Every registration, by (name, version).
    #[cfg_attr(not(feature = "schema"), allow(dead_code))]
    pub(crate) fn all(&self) -> impl Iterator<Item = &'static WireRegistration> + '_ {
        let mut all: Vec<_> = self.by_type.values().copied().collect();
        all.sort_by_key(|r| (r.event.name(), r.event.version()));
        all.into_iter()
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

/// The JSON Schema of the distributed event `name` at `version`, when its type derives
/// `schemars::JsonSchema`: the schema of its CloudEvents `data`, with `x-event-name` and
/// `x-event-version` added. `None` for an unknown (name, version) or a type without a schema.
///
/// ```
/// use eventbus_core::{wire, Event};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, schemars::JsonSchema)]
/// #[event(name = "parcel.shipped", version = 2, distributed)]
/// struct ParcelShipped { parcel: u64 }
///
/// let schema = wire::schema("parcel.shipped", 2).unwrap();
/// assert_eq!(schema["properties"]["parcel"]["type"], "integer");
/// assert_eq!(schema["x-event-version"], 2);
/// ```
#[cfg(feature = "schema")]
pub fn schema(name: &str, version: u32) -> Option<serde_json::Value> {
    schema_of(registry().by_name(name, version).ok()?)
}

/// The JSON Schema of every distributed event version that has one: `(name, version,
/// schema)`, sorted. Write them out in CI to see a change of the wire format in review.
#[cfg(feature = "schema")]
pub fn schemas() -> Vec<(&'static str, u32, serde_json::Value)> {
    registry()
        .all()
        .filter_map(|r| Some((r.event.name(), r.event.version(), schema_of(r)?)))
        .collect()
}

#[cfg(feature = "schema")]
fn schema_of(registration: &WireRegistration) -> Option<serde_json::Value> {
    let mut schema = (registration.schema)()?();
    if let Some(object) = schema.as_object_mut() {
        object.insert("x-event-name".into(), registration.event.name().into());
        object.insert(
            "x-event-version".into(),
            registration.event.version().into(),
        );
    }
    Some(schema)
}
