//! Subscriptions by event name, for auditors, generic forwarders and plugins: a listener
//! receives every matching event as JSON with its metadata, published here or received from
//! the wire, without knowing its Rust type. [`EventBus::on`] and [`EventBus::off`].

use super::registry::registry;
use crate::event::{EventMeta, EventType};
use crate::handler::Context;
use crate::EventBus;
use serde::de::DeserializeOwned;
use std::fmt;
use std::sync::Arc;

/// A listener of events by name: shared, so that the same one can be subscribed once and
/// unsubscribed with [`EventBus::off`].
pub type Listener = Arc<dyn Fn(&NamedEvent<'_>) + Send + Sync>;

/// An event as a name listener receives it.
#[derive(Debug)]
pub struct NamedEvent<'a> {
    name: &'static str,
    version: u32,
    data: &'a str,
    meta: &'a EventMeta,
}

impl<'a> NamedEvent<'a> {
    /// The event's name (its concrete type's; see [`EventBus::on`] for a type without a
    /// JSON form of its own).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Its version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The event as JSON text: its CloudEvents `data`.
    pub fn data(&self) -> &'a str {
        self.data
    }

    /// The event as a JSON value.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.data).expect("the bus wrote this JSON itself")
    }

    /// The event read as `T` (any type that deserialises from its JSON).
    pub fn parse<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(self.data)
    }

    /// Its metadata: id, time, correlation, headers, origin.
    pub fn meta(&self) -> &'a EventMeta {
        self.meta
    }
}

/// A pattern of event names: dot-separated segments, where `*` stands for one segment and a
/// final `**` for one or more, optionally with `@version`: `orders.placed`, `orders.*`,
/// `orders.**`, `orders.placed@2`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamePattern {
    text: String,
    segments: Vec<Segment>,
    version: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Exact(String),
    One,
    Rest,
}

/// Why a name pattern was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PatternError {
    /// Not a pattern: empty, an empty segment, `**` before the end, a bad `@version`.
    Invalid {
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// No `#[event(distributed)]` type in this binary has a matching name, so the listener
    /// would never be called.
    NoMatch {
        /// The pattern.
        pattern: String,
    },
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternError::Invalid { pattern, why } => {
                write!(f, "`{pattern}` is not an event name pattern: {why}")
            }
            PatternError::NoMatch { pattern } => write!(
                f,
                "no `#[event(distributed)]` type in this binary matches `{pattern}`: the \
                 listener would never be called (name listeners receive events as JSON, so \
                 only distributed types reach them)"
            ),
        }
    }
}

impl std::error::Error for PatternError {}

impl std::str::FromStr for NamePattern {
    type Err = PatternError;

    fn from_str(text: &str) -> Result<Self, PatternError> {
        let invalid = |why| PatternError::Invalid {
            pattern: text.to_owned(),
            why,
        };
        let (names, version) = match text.split_once('@') {
            Some((names, version)) => {
                let version = version
                    .parse::<u32>()
                    .ok()
                    .filter(|v| *v > 0)
                    .ok_or_else(|| invalid("`@` is followed by a version, a number from 1"))?;
                (names, Some(version))
            }
            None => (text, None),
        };
        if names.is_empty() {
            return Err(invalid("it is empty"));
        }
        let parts: Vec<&str> = names.split('.').collect();
        let mut segments = Vec::with_capacity(parts.len());
        for (index, part) in parts.iter().enumerate() {
            segments.push(match *part {
                "" => return Err(invalid("a segment between dots is empty")),
                "*" => Segment::One,
                "**" if index + 1 == parts.len() => Segment::Rest,
                "**" => return Err(invalid("`**` stands for the rest of the name: put it last")),
                exact if exact.contains('*') => {
                    return Err(invalid("`*` stands for a whole segment, as in `orders.*`"))
                }
                exact => Segment::Exact(exact.to_owned()),
            });
        }
        Ok(NamePattern {
            text: text.to_owned(),
            segments,
            version,
        })
    }
}

impl NamePattern {
    /// Whether an event type's own name and version match.
    pub fn matches(&self, ty: &EventType) -> bool {
        if self.version.is_some_and(|v| v != ty.version()) {
            return false;
        }
        let names: Vec<&str> = ty.name().split('.').collect();
        let mut at = 0;
        for segment in &self.segments {
            match segment {
                Segment::Rest => return names.len() > at,
                Segment::One if at < names.len() => at += 1,
                Segment::Exact(exact) if names.get(at) == Some(&exact.as_str()) => at += 1,
                _ => return false,
            }
        }
        at == names.len()
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl EventBus {
    /// Calls `listener` with every event whose name matches `pattern` (see [`NamePattern`]),
    /// as JSON with its metadata: published here, emitted, or received from the wire. An event
    /// matches when its type or one of its ancestors does, and reaches the listener once; an
    /// old version that upcasts to a matching newer one reaches it as that newer version
    /// (listen to `name@1` for version 1 as it was).
    /// Listeners run as sync handlers: in dispatch order at priority 0, isolated like any
    /// handler (a panic is recorded in the report). Subscribing the same listener (the same
    /// `Arc`) under the same pattern again changes nothing.
    ///
    /// Only `#[event(distributed)]` types have a JSON form; a pattern that matches none of
    /// those in this binary is an error. An event derived from a matching type that is not
    /// distributed itself is delivered as the matching type (its name and data).
    ///
    /// ```
    /// use eventbus_core::{wire::{Listener, NamedEvent}, Event, EventBus};
    /// use serde::{Deserialize, Serialize};
    /// use std::sync::{Arc, Mutex};
    ///
    /// #[derive(Event, Serialize, Deserialize)]
    /// #[event(name = "billing.invoiced", distributed)]
    /// struct Invoiced { cents: u64 }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let bus = EventBus::new();
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = seen.clone();
    /// let audit: Listener = Arc::new(move |e: &NamedEvent| {
    ///     log.lock().unwrap().push(format!("{} {}", e.name(), e.data()));
    /// });
    /// bus.on("billing.*", &audit).unwrap();
    /// bus.on("billing.*", &audit).unwrap(); // once is enough
    /// let _ = bus.publish(Invoiced { cents: 500 }).await;
    /// assert!(bus.off("billing.*", &audit));
    /// let _ = bus.publish(Invoiced { cents: 600 }).await;
    /// assert_eq!(*seen.lock().unwrap(), [r#"billing.invoiced {"cents":500}"#]);
    /// # }
    /// ```
    #[track_caller]
    pub fn on(&self, pattern: &str, listener: &Listener) -> Result<(), PatternError> {
        let pattern: NamePattern = pattern.parse()?;
        // The topmost matching types: a handler of a type also gets the types derived from
        // it, so a derived type whose ancestor matches is not subscribed again.
        let distributed: Vec<&'static EventType> = registry().all().map(|r| r.event).collect();
        let mut targets: Vec<&'static EventType> = Vec::new();
        for ty in &distributed {
            if let Some(top) = ty.lineage().filter(|t| pattern.matches(t)).last() {
                if !targets
                    .iter()
                    .any(|t| EventType::type_id(t) == top.type_id())
                {
                    targets.push(top);
                }
            }
        }
        let matched = !targets.is_empty();
        // An old version that upcasts to a matching newer one reaches the listener as that
        // one: subscribing it too would deliver it twice.
        let upcasts = &self.engine().router.upcasts;
        targets.retain(|ty| {
            upcasts
                .chain(ty)
                .is_none_or(|chain| !pattern.matches(chain.newest()))
        });
        if !matched {
            return Err(PatternError::NoMatch {
                pattern: pattern.to_string(),
            });
        }
        let key = listener_key(&pattern, listener);
        for target in targets {
            let listener = Arc::clone(listener);
            let deliver = move |ctx: Context<'_>| deliver(target, &listener, ctx);
            self.subscribe_keyed(target, format!("on({pattern})"), &key, Box::new(deliver));
        }
        Ok(())
    }

    /// Unsubscribes `listener` from `pattern`; `false` when it was not subscribed there.
    pub fn off(&self, pattern: &str, listener: &Listener) -> bool {
        match pattern.parse::<NamePattern>() {
            Ok(pattern) => self.unsubscribe_keyed(&listener_key(&pattern, listener)),
            Err(_) => false,
        }
    }
}

/// What identifies one listener under one pattern: the pattern and the listener's address
/// (which cannot be reused while a subscription holds the listener).
fn listener_key(pattern: &NamePattern, listener: &Listener) -> String {
    format!("{pattern}#{:p}", Arc::as_ptr(listener))
}

/// Hands one event to a listener, as JSON: the concrete type's when it is distributed, else
/// the part of the type the listener matched.
fn deliver(
    target: &'static EventType,
    listener: &Listener,
    ctx: Context<'_>,
) -> Result<(), String> {
    let meta = ctx.meta();
    let event = ctx.erased_event();
    // The event's own type: of the version the listener's type is part of, when an old
    // version travels with newer ones.
    let (own, level) = event
        .own_type_of(target.type_id())
        .expect("the event holds the part it was dispatched for");
    let (ty, part) = match registry().by_type(own.type_id()) {
        Some(_) => (own, event.part(level)),
        None => (
            target,
            event.level_of(target.type_id()).and_then(|l| event.part(l)),
        ),
    };
    let registration = registry()
        .by_type(ty.type_id())
        .expect("name listeners subscribe to distributed types only");
    let part = part.expect("the event holds the part it was dispatched for");
    let mut data = Vec::new();
    (registration.encode)(part, &mut data)
        .map_err(|e| format!("cannot write the event as JSON: {e}"))?;
    let data = String::from_utf8(data).expect("serde_json writes UTF-8");
    listener(&NamedEvent {
        name: ty.name(),
        version: ty.version(),
        data: &data,
        meta,
    });
    Ok(())
}
