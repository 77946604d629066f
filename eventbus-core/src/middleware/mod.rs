//! Middleware: code that runs around every publish, before any handler.
//!
//! A middleware receives the [`Envelope`] (the event and its metadata, owned) and [`Next`] (the
//! rest of the chain, ending in the handlers). It can
//! - **filter**: return [`Envelope::filter`] instead of calling `next`; the event reaches no
//!   handler and the report says which middleware filtered it and why;
//! - **transform**: change the event ([`Envelope::event_mut`]) or its
//!   [headers](Envelope::headers_mut) before calling `next`;
//! - **wrap**: run code after `next.run(envelope).await`, with the report in hand.
//!
//! Middleware runs in the order it was added to the builder, for every publish, emit and
//! follow-up event. [`EventBusBuilder::middleware_for`](crate::EventBusBuilder::middleware_for)
//! scopes one to an event type and everything derived from it. A middleware that panics is
//! recorded as a failure in the report; the bus goes on.
//!
//! ```
//! use eventbus_core::middleware::{self, Envelope, Next};
//! use eventbus_core::{Context, Event, EventBus};
//!
//! #[derive(Event)]
//! struct Signup { email: String }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let bus = EventBus::builder()
//!     // transform: stamp a tenant header, redact the email
//!     .middleware(middleware::from_fn("tenant", |mut env: Envelope, next: Next| async move {
//!         env.headers_mut().insert("tenant", "acme");
//!         if let Some(signup) = env.event_mut::<Signup>() {
//!             signup.email = "***".into();
//!         }
//!         next.run(env).await
//!     }))
//!     // filter: drop signups from a blocked tenant
//!     .middleware(middleware::from_fn("blocklist", |env: Envelope, next: Next| async move {
//!         if env.header("tenant") == Some("blocked") {
//!             return env.filter("tenant is blocked");
//!         }
//!         next.run(env).await
//!     }))
//!     .build()
//!     .unwrap();
//! let _sub = bus.subscribe(|e: &Signup, ctx: Context| {
//!     assert_eq!(e.email, "***");
//!     assert_eq!(ctx.header("tenant"), Some("acme"));
//! });
//! assert!(bus.publish(Signup { email: "ada@example.com".into() }).await.is_ok());
//! # }
//! ```

mod authorize;
mod logging;
#[cfg(feature = "metrics")]
mod metrics;

pub use crate::engine::pipeline::{
    from_fn, sync, BoxFuture, Envelope, EnvelopeMut, Flow, FnMiddleware, Hooks, Middleware, Next,
    SyncMiddleware,
};
pub use authorize::Authorize;
pub use logging::Logging;
#[cfg(feature = "metrics")]
pub use metrics::Metrics;
