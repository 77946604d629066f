//! The CloudEvents 1.0 JSON envelope (structured mode).
// Only the bridges (behind features) send and receive; the codec is always built and tested.
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

use super::registry::registry;
use crate::event::{AnyEvent, ErasedEvent, EventId, EventMeta, EventType, Headers};
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const SPEC_VERSION: &str = "1.0";
const CONTENT_TYPE: &str = "application/json";
/// Attributes with a meaning of their own: never taken from, or turned into, headers.
const RESERVED: &[&str] = &[
    "specversion",
    "id",
    "source",
    "type",
    "time",
    "datacontenttype",
    "dataschema",
    "subject",
    "data",
    "data_base64",
    "eventversion",
    "correlationid",
    "causationid",
    "instanceid",
];

/// Why an event could not be encoded.
#[derive(Debug)]
pub(crate) enum EncodeError {
    /// Its type is not `#[event(distributed)]`.
    NotDistributed(&'static str),
    /// serde failed.
    Serialize(serde_json::Error),
    /// The event's time has no RFC 3339 form (a year past 9999).
    Time(time::error::Format),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::NotDistributed(name) => write!(
                f,
                "`{name}` cannot be sent: mark its type `#[event(distributed)]`"
            ),
            EncodeError::Serialize(error) => write!(f, "cannot serialise the event: {error}"),
            EncodeError::Time(error) => write!(f, "cannot write the event's time: {error}"),
        }
    }
}

/// Encodes an event as a CloudEvent. Headers whose names are not valid extension names are
/// left out (and logged).
pub(crate) fn encode(
    event: &dyn ErasedEvent,
    meta: &EventMeta,
    source: &str,
    instance: &str,
) -> Result<String, EncodeError> {
    encode_as(event, meta.event_type, meta, source, instance)
}

/// [`encode`] of `event` (whose own type is `event_type`) under the metadata of another event:
/// an older version sent in place of the newer one it was made from.
pub(crate) fn encode_as(
    event: &dyn ErasedEvent,
    event_type: &'static EventType,
    meta: &EventMeta,
    source: &str,
    instance: &str,
) -> Result<String, EncodeError> {
    let registration = registry()
        .by_type(event_type.type_id())
        .ok_or(EncodeError::NotDistributed(event_type.name()))?;
    let part = event.part(0).expect("level 0 is the event itself");
    // The attributes are written straight into the buffer, then `"data":` and the event: one
    // pass, no intermediate value. Ids, the time and the numbers need no escaping; text that
    // comes from users (names, headers) goes through serde_json's string escaping.
    let mut json = Vec::with_capacity(512);
    json.extend_from_slice(b"{\"specversion\":\"");
    json.extend_from_slice(SPEC_VERSION.as_bytes());
    json.extend_from_slice(b"\",\"id\":\"");
    json.extend_from_slice(meta.event_id().hyphenated().as_bytes());
    json.extend_from_slice(b"\",\"source\":");
    write_string(&mut json, source)?;
    json.extend_from_slice(b",\"type\":");
    write_string(&mut json, event_type.name())?;
    json.extend_from_slice(b",\"time\":\"");
    write_time(&mut json, meta.time())?;
    json.extend_from_slice(b"\",\"datacontenttype\":\"");
    json.extend_from_slice(CONTENT_TYPE.as_bytes());
    json.extend_from_slice(b"\",\"eventversion\":");
    serde_json::to_writer(&mut json, &event_type.version()).map_err(EncodeError::Serialize)?;
    json.extend_from_slice(b",\"correlationid\":\"");
    json.extend_from_slice(meta.correlation_id().hyphenated().as_bytes());
    if let Some(causation_id) = meta.causation_id() {
        json.extend_from_slice(b"\",\"causationid\":\"");
        json.extend_from_slice(causation_id.hyphenated().as_bytes());
    }
    json.extend_from_slice(b"\",\"instanceid\":");
    write_string(&mut json, instance)?;
    for (name, value) in super::trace_context::outgoing(meta) {
        write_extension(&mut json, name, &value)?;
    }
    for (name, value) in meta.headers.iter() {
        if is_extension_name(name) && !RESERVED.contains(&name) {
            write_extension(&mut json, name, value)?;
        } else {
            tracing::warn!(
                header = name,
                event = event_type.name(),
                "header not sent: not a valid CloudEvents extension name (a-z0-9, at most 20)"
            );
        }
    }
    json.extend_from_slice(b",\"data\":");
    (registration.encode)(part, &mut json).map_err(EncodeError::Serialize)?;
    json.push(b'}');
    Ok(String::from_utf8(json).expect("ASCII and serde_json's output are UTF-8"))
}

/// `text` as a JSON string, escaped.
fn write_string(json: &mut Vec<u8>, text: &str) -> Result<(), EncodeError> {
    serde_json::to_writer(json, text).map_err(EncodeError::Serialize)
}

/// `,"name":"value"`: a header as an extension attribute (its name already checked).
fn write_extension(json: &mut Vec<u8>, name: &str, value: &str) -> Result<(), EncodeError> {
    json.push(b',');
    write_string(json, name)?;
    json.push(b':');
    write_string(json, value)
}

/// RFC 3339 in UTC with as many fraction digits as the instant needs, so it reads back exact.
fn write_time(json: &mut Vec<u8>, at: SystemTime) -> Result<(), EncodeError> {
    OffsetDateTime::from(at)
        .format_into(json, &Rfc3339)
        .map(drop)
        .map_err(EncodeError::Time)
}

/// Any RFC 3339 timestamp: every offset (`Z`, `z`, `+02:00`, `-00:00`), any fraction length,
/// `T` or `t` (or a space) between date and time, and a leap second (read as the last instant
/// of the second before).
fn parse_time(text: &str) -> Result<SystemTime, time::error::Parse> {
    OffsetDateTime::parse(text, &Rfc3339).map(SystemTime::from)
}

fn is_extension_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 20
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A decoded CloudEvent, ready to be published on the local bus; its ids borrowed from the
/// message.
pub(crate) struct Incoming<'a> {
    pub(crate) event: AnyEvent,
    pub(crate) id: EventId,
    /// The `id` attribute as sent, for de-duplication.
    pub(crate) remote_id: Cow<'a, str>,
    /// The `source` attribute: the service that sent it.
    pub(crate) source: Cow<'a, str>,
    pub(crate) time: SystemTime,
    pub(crate) correlation_id: EventId,
    pub(crate) causation_id: Option<EventId>,
    pub(crate) headers: Headers,
}

impl Incoming<'_> {
    /// The event and its metadata, as the bus publishes them. `origin` is the sending service
    /// as the metadata tells it (`source`, shared by the caller across events), or `None` to
    /// publish the event as this process's own.
    pub(crate) fn into_event(self, origin: Option<Arc<str>>) -> (AnyEvent, EventMeta) {
        let meta = EventMeta::received(
            self.event.event_type(),
            self.id,
            self.time,
            (self.correlation_id, self.causation_id),
            self.headers,
            origin,
        );
        (self.event, meta)
    }
}

/// Why a message from the wire could not be turned into an event.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not JSON, not a CloudEvents 1.0 object, or a required attribute is missing or invalid.
    Malformed(String),
    /// No distributed event type has this name.
    UnknownType {
        /// The `type` attribute.
        name: String,
    },
    /// The name is known, but not at this version.
    UnknownVersion {
        /// The `type` attribute.
        name: String,
        /// The `eventversion` extension.
        version: u32,
    },
    /// A version newer than any this process knows: its sender was upgraded first. Upgrade
    /// consumers before producers (see the guide's `docs/versioning.md`).
    NewerVersion {
        /// The `type` attribute.
        name: String,
        /// The `eventversion` extension.
        version: u32,
        /// The newest version of `name` this process knows.
        newest: u32,
    },
    /// `data` does not fit the event type.
    BadData {
        /// The `type` attribute.
        name: String,
        /// The `eventversion` extension.
        version: u32,
        /// What serde said.
        error: String,
    },
}

impl DecodeError {
    /// A short, stable label: `malformed`, `unknown_type`, `unknown_version` or `bad_data`.
    pub fn label(&self) -> &'static str {
        match self {
            DecodeError::Malformed(_) => "malformed",
            DecodeError::UnknownType { .. } => "unknown_type",
            DecodeError::UnknownVersion { .. } => "unknown_version",
            DecodeError::NewerVersion { .. } => "newer_version",
            DecodeError::BadData { .. } => "bad_data",
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Malformed(why) => write!(f, "malformed CloudEvent: {why}"),
            DecodeError::UnknownType { name } => write!(f, "unknown event type `{name}`"),
            DecodeError::UnknownVersion { name, version } => {
                write!(f, "event type `{name}` is not known at version {version}")
            }
            DecodeError::NewerVersion {
                name,
                version,
                newest,
            } => write!(
                f,
                "event type `{name}` arrived at version {version}, newer than any this \
                 process knows (newest: {newest}); upgrade consumers before producers"
            ),
            DecodeError::BadData {
                name,
                version,
                error,
            } => write!(f, "data does not fit `{name}` v{version}: {error}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A received CloudEvent whose attributes are read and checked, borrowed from the message. Its
/// data is decoded only by [`Envelope::decode`], so a bridge skips its own events cheaply.
pub(crate) struct Envelope<'a> {
    remote_id: Cow<'a, str>,
    source: Cow<'a, str>,
    instance: Option<Cow<'a, str>>,
    name: Cow<'a, str>,
    version: u32,
    time: SystemTime,
    correlation_id: Option<EventId>,
    causation_id: Option<EventId>,
    data: &'a RawValue,
    extensions: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> Envelope<'a> {
    /// Reads the envelope in one pass and checks every attribute; the data stays raw.
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let malformed = DecodeError::Malformed;
        let Members {
            specversion,
            id,
            source,
            ty,
            time,
            datacontenttype,
            correlationid,
            causationid,
            instanceid,
            eventversion,
            data,
            extensions,
        } = std::str::from_utf8(bytes)
            // Checked once for the whole message: read from a `str`, serde_json does not
            // check each string again.
            .map_err(|e| malformed(format!("not UTF-8: {e}")))
            .and_then(|text| serde_json::from_str(text).map_err(|e| malformed(e.to_string())))?;
        let specversion = string(specversion, "specversion", true)?.unwrap_or_default();
        if specversion != SPEC_VERSION {
            return Err(malformed(format!(
                "unsupported specversion {specversion:?}"
            )));
        }
        let time = match string(time, "time", false)? {
            Some(text) => {
                parse_time(&text).map_err(|e| malformed(format!("`time` {text:?}: {e}")))?
            }
            None => SystemTime::now(),
        };
        if let Some(content_type) = string(datacontenttype, "datacontenttype", false)? {
            if !content_type.starts_with(CONTENT_TYPE) {
                return Err(malformed(format!(
                    "unsupported datacontenttype {content_type:?}"
                )));
            }
        }
        let version = eventversion.map_or(Ok(1), parse_version)?;
        let parse_id = |text: Option<Cow<str>>| text.and_then(|t| t.parse::<EventId>().ok());
        Ok(Envelope {
            remote_id: string(id, "id", true)?.unwrap_or_default(),
            source: string(source, "source", true)?.unwrap_or_default(),
            instance: string(instanceid, "instanceid", false)?,
            name: string(ty, "type", true)?.unwrap_or_default(),
            version,
            time,
            correlation_id: parse_id(string(correlationid, "correlationid", false)?),
            causation_id: parse_id(string(causationid, "causationid", false)?),
            data: data.ok_or_else(|| malformed("missing `data`".into()))?,
            extensions,
        })
    }

    /// Parses and decodes a message, unless `is_own` recognises it from its attributes as one
    /// this process sent: `Ok(None)` then. Bridges receive their own messages, and need not
    /// pay for rebuilding their events.
    pub(crate) fn decode_unless(
        bytes: &'a [u8],
        is_own: impl FnOnce(&Self) -> bool,
    ) -> Result<Option<Incoming<'a>>, DecodeError> {
        let envelope = Self::parse(bytes)?;
        if is_own(&envelope) {
            return Ok(None);
        }
        envelope.decode().map(Some)
    }

    /// The service that sent it.
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// The bridge instance that sent it, if it said.
    pub(crate) fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }

    /// Rebuilds the typed event by its registered (name, version).
    pub(crate) fn decode(self) -> Result<Incoming<'a>, DecodeError> {
        let Envelope { name, version, .. } = &self;
        let registration = registry()
            .by_name(name, *version)
            .map_err(|newest| match newest {
                Some(newest) if *version > newest => DecodeError::NewerVersion {
                    name: name.to_string(),
                    version: *version,
                    newest,
                },
                Some(_) => DecodeError::UnknownVersion {
                    name: name.to_string(),
                    version: *version,
                },
                None => DecodeError::UnknownType {
                    name: name.to_string(),
                },
            })?;
        let event = (registration.decode)(self.data).map_err(|e| DecodeError::BadData {
            name: name.to_string(),
            version: *version,
            error: e.to_string(),
        })?;
        let mut headers = Headers::new();
        for (key, raw) in self.extensions {
            // Extensions are strings on our side; other JSON values keep their JSON text.
            let value = match serde_json::from_str::<Attribute>(raw.get()) {
                Ok(Attribute::Text(text)) => text.into_owned(),
                _ => raw.get().to_owned(),
            };
            headers.insert(key.into_owned(), value);
        }
        let id = self.remote_id.parse().unwrap_or_default();
        Ok(Incoming {
            event,
            id,
            correlation_id: self.correlation_id.unwrap_or(id),
            causation_id: self.causation_id,
            remote_id: self.remote_id,
            source: self.source,
            time: self.time,
            headers,
        })
    }
}

/// The `eventversion` extension: a CloudEvents Integer, as a JSON number or in its canonical
/// string form (`"2"`), which generic producers write for an extension whose type they do not
/// know. Versions start at 1.
fn parse_version(raw: &RawValue) -> Result<u32, DecodeError> {
    let version = match serde_json::from_str::<Attribute>(raw.get()) {
        Ok(Attribute::Text(text)) => text.parse::<u32>().ok(),
        _ => serde_json::from_str::<u32>(raw.get()).ok(),
    };
    version.filter(|v| *v >= 1).ok_or_else(|| {
        DecodeError::Malformed(format!(
            "`eventversion` must be an integer from 1 up, as a number or a decimal string; got {}",
            raw.get()
        ))
    })
}

/// An envelope's members as read in one pass: string attributes parsed in place (borrowed
/// unless escaped), `data` and extensions left raw. A repeated member keeps its last value.
#[derive(Default)]
struct Members<'a> {
    specversion: Option<Attribute<'a>>,
    id: Option<Attribute<'a>>,
    source: Option<Attribute<'a>>,
    ty: Option<Attribute<'a>>,
    time: Option<Attribute<'a>>,
    datacontenttype: Option<Attribute<'a>>,
    correlationid: Option<Attribute<'a>>,
    causationid: Option<Attribute<'a>>,
    instanceid: Option<Attribute<'a>>,
    eventversion: Option<&'a RawValue>,
    data: Option<&'a RawValue>,
    extensions: Vec<(Cow<'a, str>, &'a RawValue)>,
}

/// A string attribute's text: an error when it is not a string, or missing and `required`.
fn string<'a>(
    value: Option<Attribute<'a>>,
    name: &str,
    required: bool,
) -> Result<Option<Cow<'a, str>>, DecodeError> {
    match value {
        Some(Attribute::Text(text)) => Ok(Some(text)),
        Some(Attribute::NotText) => {
            Err(DecodeError::Malformed(format!("`{name}` must be a string")))
        }
        None if required => Err(DecodeError::Malformed(format!("missing `{name}`"))),
        None => Ok(None),
    }
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a CloudEvents JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut m = Members::default();
                while let Some(Text(key)) = map.next_key()? {
                    match &*key {
                        "specversion" => m.specversion = Some(map.next_value()?),
                        "id" => m.id = Some(map.next_value()?),
                        "source" => m.source = Some(map.next_value()?),
                        "type" => m.ty = Some(map.next_value()?),
                        "time" => m.time = Some(map.next_value()?),
                        "datacontenttype" => m.datacontenttype = Some(map.next_value()?),
                        "correlationid" => m.correlationid = Some(map.next_value()?),
                        "causationid" => m.causationid = Some(map.next_value()?),
                        "instanceid" => m.instanceid = Some(map.next_value()?),
                        "eventversion" => m.eventversion = Some(map.next_value()?),
                        "data" => m.data = Some(map.next_value()?),
                        reserved if RESERVED.contains(&reserved) => {
                            map.next_value::<IgnoredAny>()?;
                        }
                        _ => m.extensions.push((key, map.next_value()?)),
                    }
                }
                Ok(m)
            }
        }
        deserializer.deserialize_map(Object)
    }
}

/// A JSON value expected to be a string: the text (borrowed from the input unless it has
/// escapes), or the mark that it was something else.
enum Attribute<'a> {
    Text(Cow<'a, str>),
    NotText,
}

impl<'de> Deserialize<'de> for Attribute<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AnyValue;
        impl<'de> Visitor<'de> for AnyValue {
            type Value = Attribute<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Attribute::Text(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Attribute::Text(Cow::Owned(text.to_owned())))
            }
            fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
                Ok(Attribute::Text(Cow::Owned(text)))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Attribute::NotText)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Attribute::NotText)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Attribute::NotText)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Attribute::NotText)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Attribute::NotText)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Attribute::NotText)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Attribute::NotText)
            }
        }
        deserializer.deserialize_any(AnyValue)
    }
}

/// A JSON string (an object key), borrowed from the input unless it has escapes.
struct Text<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Attribute::deserialize(deserializer)? {
            Attribute::Text(text) => Ok(Text(text)),
            Attribute::NotText => Err(serde::de::Error::custom("expected a string")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Event;
    use serde::{Deserialize, Serialize};

    fn decode(bytes: &[u8]) -> Result<Incoming<'_>, DecodeError> {
        Envelope::parse(bytes)?.decode()
    }

    #[derive(Event, Serialize, Deserialize, Debug, PartialEq, Clone)]
    #[event(name = "test.root", distributed)]
    struct Root {
        at: u64,
    }

    #[derive(Event, Serialize, Deserialize, Debug, PartialEq, Clone)]
    #[event(extends = Root, name = "test.child", version = 2, distributed)]
    struct Child {
        #[event(base)]
        base: Root,
        note: String,
    }

    fn child() -> Child {
        Child {
            base: Root { at: 5 },
            note: "hi".into(),
        }
    }

    #[test]
    fn round_trip_keeps_the_event_ids_and_headers() {
        let mut meta = EventMeta::root(Child::TYPE);
        meta.headers.insert("tenant", "acme");
        meta.headers.insert("Bad-Name", "dropped");
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        meta.headers.insert("traceparent", traceparent);
        let json = encode(&child(), &meta, "orders", "i-1").unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["specversion"], "1.0");
        assert_eq!(value["type"], "test.child");
        assert_eq!(value["eventversion"], 2);
        assert_eq!(value["source"], "orders");
        assert_eq!(value["tenant"], "acme");
        assert!(value.get("Bad-Name").is_none());
        assert_eq!(value["data"]["note"], "hi");

        let incoming = decode(json.as_bytes()).unwrap();
        assert_eq!(incoming.id, meta.event_id());
        assert_eq!(incoming.correlation_id, meta.event_id());
        assert_eq!(incoming.source, "orders");
        let envelope = Envelope::parse(json.as_bytes()).unwrap();
        assert_eq!(
            (envelope.source(), envelope.instance()),
            ("orders", Some("i-1"))
        );
        assert_eq!(incoming.headers.get("tenant"), Some("acme"));
        // The CloudEvents distributed-tracing extension, as a header both ways.
        assert_eq!(value["traceparent"], traceparent);
        assert_eq!(incoming.headers.get("traceparent"), Some(traceparent));
        assert_eq!(incoming.event.downcast_ref::<Child>(), Some(&child()));
        assert_eq!(incoming.event.downcast_ref::<Root>(), Some(&Root { at: 5 }));
    }

    #[test]
    fn every_kind_of_bad_input_is_a_typed_error() {
        let good = encode(&child(), &EventMeta::root(Child::TYPE), "s", "i").unwrap();
        let with = |key: &str, value: serde_json::Value| {
            let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
            v[key] = value;
            v.to_string()
        };
        let label = |bytes: &[u8]| decode(bytes).err().map(|e| e.label());
        assert_eq!(label(b"{not json"), Some("malformed"));
        assert_eq!(label(b"[1,2]"), Some("malformed"));
        assert_eq!(
            label(with("specversion", "0.3".into()).as_bytes()),
            Some("malformed")
        );
        assert_eq!(
            label(with("type", "nobody.knows".into()).as_bytes()),
            Some("unknown_type")
        );
        assert_eq!(
            label(with("eventversion", 9.into()).as_bytes()),
            Some("newer_version")
        );
        assert_eq!(
            label(with("eventversion", 1.into()).as_bytes()),
            Some("unknown_version")
        );
        assert_eq!(
            label(with("data", serde_json::json!({"x": 1})).as_bytes()),
            Some("bad_data")
        );
        assert_eq!(
            label(with("time", "yesterday".into()).as_bytes()),
            Some("malformed")
        );
        let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
        v.as_object_mut().unwrap().remove("id");
        assert_eq!(
            decode(v.to_string().as_bytes()).err(),
            Some(DecodeError::Malformed("missing `id`".into()))
        );
        // A byte that is not UTF-8 inside a string.
        let source = good.find(r#""source":"s""#).unwrap() + r#""source":""#.len();
        let mut bytes = good.into_bytes();
        bytes[source] = 0xff;
        assert!(matches!(
            decode(&bytes).err(),
            Some(DecodeError::Malformed(why)) if why.starts_with("not UTF-8")
        ));
    }

    #[test]
    fn text_from_users_is_escaped_and_every_attribute_is_written() {
        let parent = EventMeta::root(Root::TYPE);
        let mut meta = EventMeta::child(&parent, Child::TYPE);
        meta.headers.insert("tenant", "a\"b\\c\u{1}\u{e9}");
        let json = encode(&child(), &meta, "or\"ders", "i\n1").unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let time = value["time"].as_str().unwrap();
        let expected = serde_json::json!({
            "specversion": "1.0",
            "id": meta.event_id().to_string(),
            "source": "or\"ders",
            "type": "test.child",
            "time": time,
            "datacontenttype": "application/json",
            "eventversion": 2,
            "correlationid": parent.event_id().to_string(),
            "causationid": parent.event_id().to_string(),
            "instanceid": "i\n1",
            "tenant": "a\"b\\c\u{1}\u{e9}",
            "data": {"base": {"at": 5}, "note": "hi"},
        });
        assert_eq!(value, expected);
        assert_eq!(parse_time(time).unwrap(), meta.time());
        let incoming = decode(json.as_bytes()).unwrap();
        assert_eq!(incoming.source, "or\"ders");
        assert_eq!(incoming.causation_id, Some(parent.event_id()));
    }

    #[test]
    fn escapes_repeats_and_non_string_values_are_read_as_json_means_them() {
        let good = encode(&child(), &EventMeta::root(Child::TYPE), "s", "i").unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
        v["source"] = "or\"ders\u{e9}".into();
        v["tenant"] = serde_json::json!({"id": [1, 2]});
        v["region"] = "eu".into();
        // An escaped key, and a repeated one whose last value wins.
        let json = v
            .to_string()
            .replacen('{', r#"{"ty\u0070e":"nobody.knows","#, 1);
        let incoming = decode(json.as_bytes()).unwrap();
        assert_eq!(incoming.source, "or\"ders\u{e9}");
        assert_eq!(incoming.headers.get("tenant"), Some(r#"{"id":[1,2]}"#));
        assert_eq!(incoming.headers.get("region"), Some("eu"));

        for (key, value) in [
            ("id", serde_json::json!(7)),
            ("time", serde_json::json!(["x"])),
        ] {
            let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
            v[key] = value;
            assert_eq!(
                decode(v.to_string().as_bytes()).err(),
                Some(DecodeError::Malformed(format!("`{key}` must be a string")))
            );
        }
        let truncated = &good[..good.len() / 2];
        assert_eq!(
            decode(truncated.as_bytes()).err().map(|e| e.label()),
            Some("malformed")
        );
    }

    fn with_attribute(key: &str, value: serde_json::Value) -> String {
        let good = encode(&child(), &EventMeta::root(Child::TYPE), "s", "i").unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
        v[key] = value;
        v.to_string()
    }

    #[test]
    fn every_rfc3339_form_of_time_reads_as_the_same_instant() {
        use std::time::{Duration, UNIX_EPOCH};
        // 2026-11-30T08:00:00Z, plus a fraction where one is given.
        let at = |nanos: u64| {
            UNIX_EPOCH + Duration::from_secs(1_796_025_600) + Duration::from_nanos(nanos)
        };
        let cases = [
            ("2026-11-30T10:00:00.123+02:00", at(123_000_000)),
            ("2026-11-30T10:00:00+02:00", at(0)),
            ("2026-11-30T08:00:00Z", at(0)),
            ("2026-11-30t08:00:00z", at(0)),
            ("2026-11-30T08:00:00-00:00", at(0)),
            ("2026-11-30T08:00:00+00:00", at(0)),
            ("2026-11-30T03:30:00.5-04:30", at(500_000_000)),
            ("2026-11-30T08:00:00.1Z", at(100_000_000)),
            ("2026-11-30T08:00:00.12Z", at(120_000_000)),
            ("2026-11-30T08:00:00.123456Z", at(123_456_000)),
            ("2026-11-30T08:00:00.123456789Z", at(123_456_789)),
            ("2026-11-30T08:00:00.000000001Z", at(1)),
            ("2026-11-30T23:59:00+15:59", at(0)),
            ("2026-11-29T16:01:00-15:59", at(0)),
        ];
        for (text, expected) in cases {
            let json = with_attribute("time", text.into());
            let incoming = decode(json.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(incoming.time, expected, "{text}");
        }
        for bad in [
            "2026-11-30T10:00:00",
            "2026-11-30T10:00Z",
            "2026-11-30T10:00:00+0200",
            "30/11/2026",
        ] {
            let error = decode(with_attribute("time", bad.into()).as_bytes()).err();
            assert_eq!(error.map(|e| e.label()), Some("malformed"), "{bad}");
        }
    }

    #[test]
    fn the_time_we_write_reads_back_as_the_same_instant() {
        let meta = EventMeta::root(Child::TYPE);
        let json = encode(&child(), &meta, "s", "i").unwrap();
        assert_eq!(decode(json.as_bytes()).unwrap().time, meta.time());
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let text = value["time"].as_str().unwrap();
        assert!(text.ends_with('Z') && text.contains('T'), "{text}");
    }

    #[test]
    fn eventversion_reads_as_a_number_or_its_canonical_string() {
        for (value, version) in [(serde_json::json!(2), 2), (serde_json::json!("2"), 2)] {
            let json = with_attribute("eventversion", value.clone());
            let incoming = decode(json.as_bytes()).unwrap_or_else(|e| panic!("{value}: {e}"));
            assert_eq!(incoming.event.event_type().version(), version);
        }
        assert_eq!(
            decode(with_attribute("eventversion", "9".into()).as_bytes()).err(),
            Some(DecodeError::NewerVersion {
                name: "test.child".into(),
                version: 9,
                newest: 2
            })
        );
        assert_eq!(
            decode(with_attribute("eventversion", "1".into()).as_bytes()).err(),
            Some(DecodeError::UnknownVersion {
                name: "test.child".into(),
                version: 1
            })
        );
        for bad in [
            serde_json::json!("two"),
            serde_json::json!(0),
            serde_json::json!("0"),
            serde_json::json!(-1),
            serde_json::json!(1.5),
            serde_json::json!(null),
        ] {
            let error = decode(with_attribute("eventversion", bad.clone()).as_bytes()).err();
            assert_eq!(error.map(|e| e.label()), Some("malformed"), "{bad}");
        }
    }

    #[test]
    fn an_event_not_marked_distributed_cannot_be_encoded() {
        #[derive(Event)]
        struct Local;
        let error = encode(&Local, &EventMeta::root(Local::TYPE), "s", "i").unwrap_err();
        assert!(error.to_string().contains("#[event(distributed)]"));
    }
}
