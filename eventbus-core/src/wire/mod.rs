//! Events on the wire: which event types can leave the process, and their form there.
//!
//! An event type opts in with `#[event(distributed)]`; it must be `Serialize` and
//! `Deserialize` (a compile error says so otherwise). The derive registers it at link time, so a
//! receiving process rebuilds the typed event from its stable (name, version) and publishes it
//! on its local bus, where hierarchy dispatch applies as if it were local.
//!
//! The wire format is a [CloudEvents 1.0](https://cloudevents.io) JSON envelope in structured
//! mode: `specversion`, `id`, `source`, `type` (the event name), `time`, `datacontenttype`,
//! `data` (the event as JSON) and lowercase extensions: `eventversion`, `correlationid`,
//! `causationid`, `instanceid` (the sending process) and every header whose name is a valid
//! extension name (lowercase `a-z0-9`, at most 20 characters).
//!
//! ```
//! use eventbus_core::{wire, Event};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Event, Serialize, Deserialize)]
//! #[event(name = "parcel.shipped", version = 2, distributed)]
//! struct ParcelShipped { parcel: u64 }
//!
//! assert!(wire::is_distributed::<ParcelShipped>());
//! let (name, version) = wire::registered().find(|(n, _)| *n == "parcel.shipped").unwrap();
//! assert_eq!((name, version), ("parcel.shipped", 2));
//! ```

mod cloudevent;
mod named;
mod registry;
mod samples;
mod trace_context;

pub use cloudevent::DecodeError;
#[cfg_attr(not(feature = "redis"), allow(unused_imports))]
pub(crate) use cloudevent::{encode, encode_as, Envelope};
pub use named::{Listener, NamePattern, NamedEvent, PatternError};
#[cfg_attr(not(feature = "redis"), allow(unused_imports))]
pub(crate) use registry::registry;
#[doc(hidden)]
pub use registry::{
    decode_event, encode_event, HasSchema, NoSchema, SchemaProbe, WireRegistration,
};
pub use registry::{is_distributed, registered};
#[cfg(feature = "schema")]
pub use registry::{schema, schemas};
pub use samples::{check_samples, SampleError, SampleErrors, SamplesChecked};
#[cfg_attr(not(feature = "redis"), allow(unused_imports))]
pub(crate) use trace_context::receive_span;
