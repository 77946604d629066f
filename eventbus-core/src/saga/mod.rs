//! Sagas (process managers): long-running processes over several events, with state kept in a
//! [`SagaStore`].
//!
//! A saga is a `serde` state type whose steps are declared with [`#[saga]`](macro@crate::saga) on an
//! `impl` block. Each step names the event it handles and the field of that event that holds
//! the saga's key (checked at compile time); `#[start]` steps may create the instance.
//! [`Sagas`] attaches them to a bus, on the in-memory store by default.
//!
//! ```
//! use eventbus_core::saga::{SagaContext, Sagas};
//! use eventbus_core::{saga, Event, EventBus};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Event)]
//! struct PaymentProcessed { order_id: String }
//! #[derive(Event)]
//! struct InventoryReserved { order_id: String }
//! #[derive(Event, Debug)]
//! struct FulfillmentStarted { order_id: String }
//!
//! #[derive(Default, Serialize, Deserialize)]
//! struct Fulfillment { paid: bool, reserved: bool }
//!
//! #[saga(name = "fulfillment", key = String)]
//! impl Fulfillment {
//!     #[start(by = order_id)]
//!     fn paid(&mut self, e: &PaymentProcessed, ctx: &mut SagaContext) {
//!         self.paid = true;
//!         self.finish(&e.order_id, ctx);
//!     }
//!
//!     #[start(by = order_id)]
//!     fn reserved(&mut self, e: &InventoryReserved, ctx: &mut SagaContext) {
//!         self.reserved = true;
//!         self.finish(&e.order_id, ctx);
//!     }
//! }
//!
//! impl Fulfillment {
//!     fn finish(&self, order_id: &str, ctx: &mut SagaContext) {
//!         if self.paid && self.reserved {
//!             ctx.publish(FulfillmentStarted { order_id: order_id.into() });
//!             ctx.complete();
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let bus = EventBus::new();
//! let sagas = Sagas::builder().saga::<Fulfillment>().start(&bus)?;
//! let _shipping = bus.subscribe(|e: &FulfillmentStarted| println!("ship {}", e.order_id));
//! // In either order:
//! bus.publish(InventoryReserved { order_id: "A-1".into() }).await.into_result()?;
//! bus.publish(PaymentProcessed { order_id: "A-1".into() }).await.into_result()?;
//! assert_eq!(sagas.stats("fulfillment").unwrap().completed, 1);
//! # Ok(()) }
//! ```
//!
//! # Guarantees
//! - **Each event changes an instance at most once.** The ids of the events an instance
//!   processed are kept with its state, so an event delivered twice (the durable Redis bridge
//!   is at-least-once) changes nothing the second time.
//! - **No lost updates.** A store keeps a version per instance and commits only over the
//!   version a step started from (optimistic concurrency); on a conflict the step runs again on
//!   the fresh state. A step must therefore act only through its state and its
//!   [`SagaContext`]: what it publishes and schedules is applied once, after its commit.
//! - **Ended is ended.** An event for an instance that completed (or was compensated) is
//!   ignored and counted ([`SagaStats::after_end`]); a start event never restarts it. An event
//!   for an instance that does not exist and that cannot start one is ignored and counted
//!   ([`SagaStats::unmatched`]).
//! - A step that fails (returns `Err` or panics) commits nothing; the handler fails like any
//!   other, and its policy (retries, `on_error`) applies.

mod context;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod runtime;
mod store;
pub mod testing;

pub use context::SagaContext;
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresStore, MIGRATION};
pub use runtime::{SagaError, SagaStats, Sagas, SagasBuilder};
pub use store::{Commit, Committed, Instance, Outbox, OutboxEntry, SagaStore, Status, StoreError};

use crate::event::Event;
use crate::handler::HandlerResult;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Display;

/// A saga: its state type, its name and key, and its steps. Implemented by
/// [`#[saga]`](macro@crate::saga), not by hand.
pub trait Saga: Serialize + DeserializeOwned + Default + Send + Sync + 'static {
    /// The type of the key that correlates events with an instance (`order_id: String`).
    type Key: Display + Send + Sync + 'static;

    /// The saga's name: where its instances are kept in the store.
    const NAME: &'static str;

    /// Declares the steps.
    #[doc(hidden)]
    fn steps(steps: &mut Steps<Self>);
}

/// The steps of a saga, as `#[saga]` declares them.
#[doc(hidden)]
pub struct Steps<S> {
    pub(crate) steps: Vec<runtime::StepDef<S>>,
}

impl<S> std::fmt::Debug for Steps<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Steps")
            .field("steps", &self.steps.len())
            .finish()
    }
}

impl<S: Saga> Steps<S> {
    /// A step for `E` that may create the instance.
    pub fn start<E: Event>(
        &mut self,
        name: &'static str,
        key: fn(&E) -> String,
        run: StepFn<S, E>,
    ) {
        self.steps.push(runtime::StepDef::new(name, true, key, run));
    }

    /// A step for `E` on an existing instance.
    pub fn step<E: Event>(&mut self, name: &'static str, key: fn(&E) -> String, run: StepFn<S, E>) {
        self.steps
            .push(runtime::StepDef::new(name, false, key, run));
    }
}

/// A step as `#[saga]` wraps it.
#[doc(hidden)]
pub type StepFn<S, E> = fn(&mut S, &E, &mut SagaContext) -> HandlerResult;

/// A saga registered at link time by `#[saga]`, found by [`SagasBuilder::with_registered`].
#[doc(hidden)]
#[derive(Debug)]
pub struct SagaRegistration {
    /// The saga's name.
    pub name: &'static str,
    /// Where `#[saga]` was written (`module_path!()`).
    pub module_path: &'static str,
    /// Adds the saga to a builder.
    pub add: fn(SagasBuilder) -> SagasBuilder,
}

inventory::collect!(SagaRegistration);
