//! `#[handler]`: parse the function into [`HandlerDef`], validating as we go, then expand.

mod expand;

use crate::attr::keys::{
    BACKOFF_MS, CRATE, NAME, ON_ERROR, PRIORITY, PUBLISHES, RETRY, TIMEOUT_MS,
};
use crate::attr::{self, Slot};
use crate::errors::Errors;
use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::parse::{Parse, Parser};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, LitStr, Path, Type};

const KEYS: &[&str] = &[
    PRIORITY, NAME, TIMEOUT_MS, RETRY, BACKOFF_MS, ON_ERROR, PUBLISHES, CRATE,
];

/// A validated handler function.
pub(crate) struct HandlerDef<'a> {
    pub func: &'a ItemFn,
    pub priority: i32,
    pub name: Option<LitStr>,
    pub timeout_ms: Option<u64>,
    pub retry: Option<u32>,
    pub backoff_ms: Option<u64>,
    pub on_error: Option<Path>,
    /// `publishes = [A, B]`: the events it publishes, for the topology.
    pub publishes: Vec<Type>,
    pub params: Vec<Param<'a>>,
    /// The path of eventbus-core in generated code (`crate = path`).
    pub krate: Path,
}

pub(crate) enum Param<'a> {
    /// `&E`: the event part the handler subscribes to.
    Event(&'a Type),
    /// Anything else is resolved through `HandlerParam` (`Context`, `State<T>`).
    Extracted(&'a Type),
}

pub(crate) fn attribute(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            // Not a (complete) fn: keep the user's tokens so the rest of the file still type-checks.
            let error = syn::Error::new(
                proc_macro2::Span::call_site(),
                "`#[handler]` goes on a free function, e.g. `#[handler] fn on_order(e: &OrderPlaced) {}`",
            )
            .to_compile_error();
            return quote::quote!(#error #item);
        }
    };
    elide_context_lifetime(&mut func);
    let mut errors = Errors::default();
    let def = parse(&args, &func, &mut errors);
    let compile_errors = errors.to_compile_errors();
    match def {
        Some(def) if errors.is_empty() => expand::expand(&def),
        // On error keep the function itself, so calls to it do not cascade into more errors.
        _ => {
            let func = fallback(func.clone());
            quote::quote!(#compile_errors #func)
        }
    }
}

fn parse<'a>(args: &TokenStream, func: &'a ItemFn, errors: &mut Errors) -> Option<HandlerDef<'a>> {
    let mut priority = Slot::<i32>::new(PRIORITY);
    let mut name = Slot::<LitStr>::new(NAME);
    let mut timeout_ms = Slot::<u64>::new(TIMEOUT_MS);
    let mut retry = Slot::<u32>::new(RETRY);
    let mut backoff_ms = Slot::<u64>::new(BACKOFF_MS);
    let mut on_error = Slot::<Path>::new(ON_ERROR);
    let mut publishes = Slot::<Vec<Type>>::new(PUBLISHES);
    let mut krate = Slot::<Path>::new(CRATE);
    let parser = syn::meta::parser(|meta| {
        let span = meta.path.span();
        if meta.path.is_ident(CRATE) {
            krate.set(span, attr::crate_path(&meta)?, errors);
        } else if meta.path.is_ident(PRIORITY) {
            priority.set(span, attr::int_value(&meta, PRIORITY, "100")?.0, errors);
        } else if meta.path.is_ident(NAME) {
            let lit = attr::string_value(&meta, NAME)?;
            if lit.value().trim().is_empty() {
                errors.error(&lit, "handler `name` must not be empty");
            }
            name.set(span, lit, errors);
        } else if meta.path.is_ident(TIMEOUT_MS) {
            let ms: u64 = attr::nonzero_int(
                &meta,
                TIMEOUT_MS,
                "500",
                "`timeout_ms` must be at least 1",
                errors,
            )?;
            timeout_ms.set(span, ms, errors);
        } else if meta.path.is_ident(RETRY) {
            let retries: u32 = attr::nonzero_int(
                &meta,
                RETRY,
                "3",
                "`retry = 0` retries nothing: give the number of retries (1 or more), or remove it",
                errors,
            )?;
            retry.set(span, retries, errors);
        } else if meta.path.is_ident(BACKOFF_MS) {
            backoff_ms.set(span, attr::int_value(&meta, BACKOFF_MS, "100")?.0, errors);
        } else if meta.path.is_ident(ON_ERROR) {
            let path: Path = meta.value()?.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "`on_error` takes the path of a fn(&HandlerFailure, Context), e.g. `on_error = alert_ops`",
                )
            })?;
            on_error.set(span, path, errors);
        } else if meta.path.is_ident(PUBLISHES) {
            let wrong = |span| {
                syn::Error::new(
                    span,
                    "`publishes` takes a list of event types, e.g. `publishes = [OrderShipped, ParcelLost]`",
                )
            };
            let value = meta.value()?;
            if !value.peek(syn::token::Bracket) {
                return Err(wrong(value.span()));
            }
            let content;
            syn::bracketed!(content in value);
            let types = content
                .parse_terminated(Type::parse, syn::Token![,])
                .map_err(|e| wrong(e.span()))?;
            if types.is_empty() {
                errors.error(
                    &meta.path,
                    "`publishes = []` declares nothing: name the events, or remove it",
                );
            }
            publishes.set(span, types.into_iter().collect(), errors);
        } else {
            return Err(attr::unknown_key(&meta, "handler", KEYS));
        }
        Ok(())
    });
    if let Err(e) = parser.parse2(args.clone()) {
        errors.push(e);
    }
    if let (Some(span), None) = (backoff_ms.span(), retry.get()) {
        errors.push(syn::Error::new(
            span,
            "`backoff_ms` applies to retries: add `retry = N` as well",
        ));
    }
    let sig = &func.sig;
    if let (Some(span), None) = (timeout_ms.span(), sig.asyncness) {
        errors.push(syn::Error::new(
            span,
            "`timeout_ms` applies to async handlers: a sync handler runs to completion and \
             cannot be interrupted; make it an `async fn`, or remove `timeout_ms`",
        ));
    }
    for attr in &func.attrs {
        if is_handler_attribute(attr) {
            errors.error(
                attr,
                "`#[handler]` is applied twice to this fn: a fn is registered once; remove one",
            );
        }
    }

    if let Some(param) = sig.generics.type_params().next() {
        errors.error(
            param,
            "a `#[handler]` cannot be generic: it is registered once, for one event type; \
             write one handler per concrete event (or handle their common parent type)",
        );
    }
    if let Some(param) = sig.generics.const_params().next() {
        errors.error(param, "a `#[handler]` cannot have const generic parameters");
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.error(unsafety, "a `#[handler]` cannot be `unsafe fn`");
    }
    if let Some(abi) = &sig.abi {
        errors.error(abi, "a `#[handler]` cannot have an `extern` ABI");
    }

    let mut params = Vec::with_capacity(sig.inputs.len());
    let mut event_seen = false;
    for input in &sig.inputs {
        let ty = match input {
            FnArg::Receiver(receiver) => {
                errors.error(
                    receiver,
                    "a `#[handler]` cannot take `self`: make it a free function and pass shared \
                     data as `State<T>` (given to the bus with `EventBus::builder().state(..)`)",
                );
                continue;
            }
            FnArg::Typed(typed) => &*typed.ty,
        };
        if let Some(error) = misplaced_extractor(ty) {
            errors.push(error);
            continue;
        }
        match ty {
            Type::Reference(reference) if reference.mutability.is_some() => {
                event_seen = true; // it is the event, wrongly borrowed: one error is enough
                errors.error(
                    reference,
                    "a handler sees an event shared with other handlers: take it by shared \
                     reference `&T`, not `&mut T`",
                );
            }
            Type::Reference(reference) if event_seen => {
                errors.error(
                    reference,
                    "a handler takes exactly one event parameter (`&E`); other parameters must \
                     be `Context` or `State<T>`",
                );
            }
            Type::Reference(reference) if matches!(&*reference.elem, Type::TraitObject(_)) => {
                event_seen = true;
                errors.error(
                    &reference.elem,
                    format!(
                        "a handler's event parameter names one concrete event type, not a trait \
                         object: write e.g. `e: &OrderPlaced` (a handler of a parent type gets \
                         every event derived from it). {SIGNATURE}"
                    ),
                );
            }
            Type::Reference(reference) => {
                event_seen = true;
                params.push(Param::Event(&reference.elem));
            }
            Type::ImplTrait(impl_trait) => {
                errors.error(
                    impl_trait,
                    "a `#[handler]` cannot be generic (`impl Trait` parameter); name a concrete type",
                );
            }
            other => params.push(Param::Extracted(other)),
        }
    }
    if !event_seen {
        let by_value = params.iter().find_map(|p| match p {
            Param::Extracted(ty) if !is_extractor_name(ty) => Some(*ty),
            _ => None,
        });
        match by_value {
            Some(ty) => errors.error(
                ty,
                format!(
                    "a handler takes its event by reference: write `&{}`",
                    ty.to_token_stream().to_string().replace(' ', "")
                ),
            ),
            None => errors.error(
                &sig.ident,
                "a `#[handler]` needs the event as a parameter taken by reference, \
                 e.g. `fn on_order(e: &OrderPlaced)`",
            ),
        }
    }
    errors.is_empty().then(|| HandlerDef {
        func,
        priority: priority.get().copied().unwrap_or(0),
        name: name.take(),
        timeout_ms: timeout_ms.take(),
        retry: retry.take(),
        backoff_ms: backoff_ms.take(),
        on_error: on_error.take(),
        publishes: publishes.take().unwrap_or_default(),
        params,
        krate: krate.take().unwrap_or_else(attr::default_crate),
    })
}

/// The fn as the user wrote it, minus what rustc would report again after our error: a
/// `&dyn Trait` event parameter (`Event` is not dyn compatible) becomes `&dyn Any`.
fn fallback(mut func: ItemFn) -> ItemFn {
    for input in &mut func.sig.inputs {
        if let FnArg::Typed(typed) = input {
            if let Type::Reference(reference) = &mut *typed.ty {
                if matches!(&*reference.elem, Type::TraitObject(_)) {
                    let span = reference.elem.span();
                    *reference.elem = syn::parse_quote_spanned!(span=> dyn ::core::any::Any);
                }
            }
        }
    }
    func
}

/// The shape every handler has, for errors about its parameters.
const SIGNATURE: &str =
    "A handler's signature is `fn name(e: &Event, ctx: Context, state: State<T>)`: \
                         the event by reference, then optionally the context and any states, \
                         by value and in any order.";

/// `Context` and `State` are recognised by name, so that writing them wrongly is one error at
/// the parameter instead of a trait error about "the event".
fn misplaced_extractor(ty: &Type) -> Option<syn::Error> {
    let (borrowed, path) = match ty {
        Type::Reference(reference) => match &*reference.elem {
            Type::Path(path) => (true, path),
            _ => return None,
        },
        Type::Path(path) => (false, path),
        _ => return None,
    };
    let last = path.path.segments.last()?;
    let name = last.ident.to_string();
    if name != "Context" && name != "State" {
        return None;
    }
    if borrowed {
        let by_value = path.to_token_stream().to_string().replace(' ', "");
        return Some(syn::Error::new_spanned(
            ty,
            format!(
                "`{name}` is taken by value: write `{by_value}`, not `&{by_value}`. {SIGNATURE}"
            ),
        ));
    }
    if name == "Context" {
        if let syn::PathArguments::AngleBracketed(args) = &last.arguments {
            for arg in &args.args {
                if let syn::GenericArgument::Lifetime(lifetime) = arg {
                    if lifetime.ident == "static" {
                        return Some(syn::Error::new_spanned(
                            lifetime,
                            format!(
                                "a handler's `Context` lives only as long as the call: write \
                                 `Context` (or `Context<'_>`), not `Context<'static>`. {SIGNATURE}"
                            ),
                        ));
                    }
                }
            }
        }
    }
    None
}

/// Whether an attribute is `#[handler]` (under any path, e.g. `#[eventbus_core::handler]`).
fn is_handler_attribute(attr: &syn::Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "handler")
}

/// `async fn` forbids eliding a path's lifetime (E0726), yet `ctx: Context` is how a handler is
/// meant to read; so a bare `Context` parameter becomes `Context<'_>`.
fn elide_context_lifetime(func: &mut ItemFn) {
    for input in &mut func.sig.inputs {
        let FnArg::Typed(typed) = input else { continue };
        let Type::Path(path) = &mut *typed.ty else {
            continue;
        };
        let Some(last) = path.path.segments.last_mut() else {
            continue;
        };
        if last.ident == "Context" && last.arguments.is_none() {
            last.arguments = syn::PathArguments::AngleBracketed(
                syn::parse_quote_spanned!(last.ident.span()=> <'_>),
            );
        }
    }
}

/// Whether a type is spelled like one of the extractors; used only to word the error for an
/// event taken by value, never to decide what a parameter is.
fn is_extractor_name(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "Context" || s.ident == "State"),
        _ => false,
    }
}
