//! `#[saga]`: parse the `impl` block into [`SagaDef`], checking as we go, then expand.

mod expand;

use crate::attr::keys::{BY, CRATE, KEY, NAME, START, STEP};
use crate::attr::{self, Slot};
use crate::errors::Errors;
use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{
    Attribute, FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, LitStr, Path, PathArguments,
    PathSegment, Receiver, Type, TypeReference,
};

const KEYS: &[&str] = &[KEY, NAME, CRATE];

/// A checked saga declaration.
pub(crate) struct SagaDef {
    pub key: Type,
    pub name: Option<LitStr>,
    pub steps: Vec<StepDef>,
    /// The path of eventbus-core in generated code (`crate = path`).
    pub krate: Path,
}

/// One step: a method marked `#[start(by = field)]` or `#[step(by = field)]`.
pub(crate) struct StepDef {
    pub method: Ident,
    pub starts: bool,
    pub event: Type,
    /// The field that holds the key: `order_id`, or a path into a base, `base.order_id`.
    pub by: Vec<Ident>,
}

/// Parses `by = order_id` or `by = base.order_id`.
fn field_path(meta: &syn::meta::ParseNestedMeta) -> syn::Result<Vec<Ident>> {
    let wrong = |span| {
        syn::Error::new(
            span,
            "`by` takes the event's field that holds the saga key, e.g. `by = order_id` or, in a base event, `by = base.order_id`",
        )
    };
    let expr: syn::Expr = meta.value()?.parse().map_err(|e| wrong(e.span()))?;
    let mut path = Vec::new();
    let mut next = &expr;
    loop {
        match next {
            syn::Expr::Field(field) => match &field.member {
                syn::Member::Named(ident) => {
                    path.push(ident.clone());
                    next = &field.base;
                }
                syn::Member::Unnamed(_) => return Err(wrong(field.member.span())),
            },
            syn::Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
                path.push(p.path.get_ident().cloned().expect("checked"));
                path.reverse();
                return Ok(path);
            }
            other => return Err(wrong(other.span())),
        }
    }
}

pub(crate) fn attribute(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut block: ItemImpl = match syn::parse2(item.clone()) {
        Ok(block) => block,
        Err(_) => {
            let error = syn::Error::new(
                Span::call_site(),
                "`#[saga]` goes on an `impl` block of the saga's state type, e.g. `#[saga(key = String)] impl Fulfillment { .. }`",
            )
            .to_compile_error();
            return quote!(#error #item);
        }
    };
    let mut errors = Errors::default();
    match parse(&args, &mut block, &mut errors) {
        Some(def) if errors.is_empty() => expand::expand(&def, &block),
        // On error keep the block (without the step attributes, which are no attributes of
        // their own), so calls to its methods do not cascade into more errors.
        _ => {
            let compile_errors = errors.to_compile_errors();
            quote!(#compile_errors #block)
        }
    }
}

/// Parses and checks, taking the step attributes off `block`; every problem goes to `errors`.
fn parse(args: &TokenStream, block: &mut ItemImpl, errors: &mut Errors) -> Option<SagaDef> {
    let mut key = Slot::<Type>::new(KEY);
    let mut name = Slot::<LitStr>::new(NAME);
    let mut krate = Slot::<Path>::new(CRATE);
    let parser = syn::meta::parser(|meta| {
        let span = meta.path.span();
        if meta.path.is_ident(KEY) {
            let ty: Type = meta.value()?.parse().map_err(|e| {
                syn::Error::new(e.span(), "`key` takes the key's type, e.g. `key = String`")
            })?;
            key.set(span, ty, errors);
        } else if meta.path.is_ident(NAME) {
            let lit = attr::string_value(&meta, NAME)?;
            if lit.value().trim().is_empty() {
                errors.error(&lit, "saga `name` must not be empty");
            }
            name.set(span, lit, errors);
        } else if meta.path.is_ident(CRATE) {
            krate.set(span, attr::crate_path(&meta)?, errors);
        } else {
            return Err(attr::unknown_key(&meta, "saga", KEYS));
        }
        Ok(())
    });
    if let Err(e) = parser.parse2(args.clone()) {
        errors.push(e);
    }
    if let Some((_, path, _)) = &block.trait_ {
        errors.error(
            path,
            "`#[saga]` goes on an inherent `impl` block (`impl Fulfillment { .. }`), not a trait impl",
        );
    }
    if !block.generics.params.is_empty() {
        errors.error(
            &block.generics,
            "a saga's state type cannot be generic: its instances are stored under one name",
        );
    }

    // Counted before the steps are checked: a start step with a mistake of its own is still
    // a start step (one error per mistake).
    let declares_start = block.items.iter().any(|item| {
        matches!(item, ImplItem::Fn(method) if method.attrs.iter().any(|a| a.path().is_ident(START)))
    });
    let mut steps = Vec::new();
    for item in &mut block.items {
        if let ImplItem::Fn(method) = item {
            if let Some(step) = take_step(method, errors) {
                steps.push(step);
            }
        }
    }
    if !declares_start {
        errors.push(syn::Error::new(
            Span::call_site(),
            "a saga needs a `#[start(by = field)]` step: an event that creates its instance",
        ));
    }
    for (i, step) in steps.iter().enumerate() {
        let event = step.event.to_token_stream().to_string();
        if let Some(first) = steps[..i]
            .iter()
            .find(|s| s.event.to_token_stream().to_string() == event)
        {
            errors.error(
                &step.event,
                format!(
                    "two steps of this saga handle `{event}` (`{}` and `{}`): an event type has one step per saga",
                    first.method, step.method
                ),
            );
        }
    }
    let Some(key) = key.take() else {
        errors.push(syn::Error::new(
            Span::call_site(),
            "`#[saga]` needs `key = Type`, the type of the key its events are correlated by, e.g. `#[saga(key = String)]`",
        ));
        return None;
    };
    Some(SagaDef {
        key,
        name: name.take(),
        steps,
        krate: krate.take().unwrap_or_else(attr::default_crate),
    })
}

/// `SagaContext` written without its lifetime becomes `SagaContext<'_>`, which an `async fn`
/// (already an error) requires, so the mistake is reported once.
fn elide_context_lifetime(method: &mut ImplItemFn) {
    struct Elide;
    impl VisitMut for Elide {
        fn visit_path_segment_mut(&mut self, segment: &mut PathSegment) {
            if segment.ident == "SagaContext" && segment.arguments.is_none() {
                segment.arguments = PathArguments::AngleBracketed(syn::parse_quote!(<'_>));
            }
            syn::visit_mut::visit_path_segment_mut(self, segment);
        }
    }
    for input in &mut method.sig.inputs {
        Elide.visit_fn_arg_mut(input);
    }
}

/// The step a method declares, with its attribute removed from it.
fn take_step(method: &mut ImplItemFn, errors: &mut Errors) -> Option<StepDef> {
    let mut found: Vec<(Attribute, bool)> = Vec::new();
    method.attrs.retain(|attr| {
        let starts = attr.path().is_ident(START);
        if starts || attr.path().is_ident(STEP) {
            found.push((attr.clone(), starts));
            false
        } else {
            true
        }
    });
    let (attr, starts) = found.first()?.clone();
    elide_context_lifetime(method);
    for (extra, _) in &found[1..] {
        errors.error(
            extra,
            "a method is one step: give it one `#[start(..)]` or `#[step(..)]`",
        );
    }
    let which = if starts { START } else { STEP };
    let mut by = Slot::<Vec<Ident>>::new(BY);
    // A `by` that does not parse is its own error, not also a missing `by`.
    let mut by_written = false;
    let parsed = attr.parse_nested_meta(|meta| {
        if meta.path.is_ident(BY) {
            by_written = true;
            let field = field_path(&meta)?;
            by.set(meta.path.span(), field, errors);
            Ok(())
        } else {
            Err(attr::unknown_key(&meta, which, &[BY]))
        }
    });
    if let Err(e) = parsed {
        // `#[start]` with no parentheses at all lands here too.
        if !matches!(attr.meta, syn::Meta::Path(_)) {
            errors.push(e);
        }
    }
    let Some(by) = by.take() else {
        if by_written {
            return None;
        }
        errors.error(
            &attr,
            format!(
                "`#[{which}]` needs `by = field`: the field of the event that holds the saga key, e.g. `#[{which}(by = order_id)]`"
            ),
        );
        return None;
    };
    let event = step_event(method, errors)?;
    Some(StepDef {
        method: method.sig.ident.clone(),
        starts,
        event,
        by,
    })
}

/// The event type of a step `fn(&mut self, e: &E, ctx: &mut SagaContext)`.
fn step_event(method: &ImplItemFn, errors: &mut Errors) -> Option<Type> {
    let sig = &method.sig;
    let shape = "a step takes `&mut self`, the event by reference and `&mut SagaContext`, e.g. `fn paid(&mut self, e: &PaymentProcessed, ctx: &mut SagaContext)`";
    if let Some(asyncness) = &sig.asyncness {
        errors.error(
            asyncness,
            "a saga step is not async: it changes the state and says what to publish; the saga publishes after the commit",
        );
        return None;
    }
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(Receiver {
            reference: Some(_),
            mutability: Some(_),
            ..
        })) => {}
        Some(other) => {
            errors.error(other, shape);
            return None;
        }
        None => {
            errors.error(&sig.ident, shape);
            return None;
        }
    }
    let event = match inputs.next() {
        Some(FnArg::Typed(pat)) => match &*pat.ty {
            Type::Reference(TypeReference {
                mutability: None,
                elem,
                ..
            }) => (**elem).clone(),
            other => {
                errors.error(other, shape);
                return None;
            }
        },
        _ => {
            errors.error(&sig.ident, shape);
            return None;
        }
    };
    if inputs.len() != 1 {
        errors.error(&sig.inputs, shape);
        return None;
    }
    Some(event)
}
