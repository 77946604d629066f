//! Procedural macros of [eventbus-core](https://docs.rs/eventbus-core).
//!
//! Do not depend on this crate directly: `eventbus_core` re-exports [`macro@Event`] and
//! [`macro@handler`], and the generated code refers to `::eventbus_core`. The user-facing
//! documentation of both macros lives in `eventbus_core`.

mod attr;
mod errors;
mod event;
mod handler;
mod saga;
mod upcast;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Turns a struct into an event. See `eventbus_core::Event` for the attributes.
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    event::derive(&input).into()
}

/// Registers a function as an event handler at link time. See `eventbus_core::handler`.
#[proc_macro_attribute]
pub fn handler(args: TokenStream, item: TokenStream) -> TokenStream {
    handler::attribute(args.into(), item.into()).into()
}

/// Declares a saga on an `impl` block of its state type. See `eventbus_core::saga`.
#[proc_macro_attribute]
pub fn saga(args: TokenStream, item: TokenStream) -> TokenStream {
    saga::attribute(args.into(), item.into()).into()
}

/// Registers a function as an upcaster at link time. See `eventbus_core::upcast`.
#[proc_macro_attribute]
pub fn upcast(args: TokenStream, item: TokenStream) -> TokenStream {
    upcast::attribute(args.into(), item.into()).into()
}
