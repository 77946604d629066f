//! `#[upcast]`: parse the function into [`UpcastDef`], validating as we go, then expand.

mod expand;

use crate::attr::keys::CRATE;
use crate::attr::{self, Slot};
use crate::errors::Errors;
use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, Path, ReturnType, Type};

const KEYS: &[&str] = &[CRATE];

/// The shape of an upcaster, for errors about its signature.
const SIGNATURE: &str = "an upcaster reads the old version and returns the next one: \
                         `#[upcast] fn v1_to_v2(old: &OrderPlacedV1) -> OrderPlaced`";

/// A validated upcaster function.
pub(crate) struct UpcastDef<'a> {
    pub func: &'a ItemFn,
    /// The old version (the parameter's referent).
    pub from: &'a Type,
    /// The next version (the return type).
    pub to: &'a Type,
    /// The path of eventbus-core in generated code (`crate = path`).
    pub krate: Path,
}

pub(crate) fn attribute(args: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let error = syn::Error::new(
                proc_macro2::Span::call_site(),
                format!("`#[upcast]` goes on a free function: {SIGNATURE}"),
            )
            .to_compile_error();
            return quote::quote!(#error #item);
        }
    };
    let mut errors = Errors::default();
    let def = parse(&args, &func, &mut errors);
    match def {
        Some(def) if errors.is_empty() => expand::expand(&def),
        // On error keep the function itself, so calls to it do not cascade into more errors.
        _ => {
            let compile_errors = errors.to_compile_errors();
            quote::quote!(#compile_errors #func)
        }
    }
}

fn parse<'a>(args: &TokenStream, func: &'a ItemFn, errors: &mut Errors) -> Option<UpcastDef<'a>> {
    let mut krate = Slot::<Path>::new(CRATE);
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident(CRATE) {
            krate.set(meta.path.span(), attr::crate_path(&meta)?, errors);
            Ok(())
        } else {
            Err(attr::unknown_key(&meta, "upcast", KEYS))
        }
    });
    if let Err(e) = parser.parse2(args.clone()) {
        errors.push(e);
    }

    let sig = &func.sig;
    if let Some(asyncness) = &sig.asyncness {
        errors.error(
            asyncness,
            format!("an upcaster cannot be `async`: it converts data and runs on every old event. {SIGNATURE}"),
        );
    }
    if let Some(param) = sig.generics.type_params().next() {
        errors.error(
            param,
            "an upcaster cannot be generic: it converts one concrete version into the next",
        );
    }
    if let Some(param) = sig.generics.const_params().next() {
        errors.error(param, "an upcaster cannot have const generic parameters");
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.error(unsafety, "an upcaster cannot be `unsafe fn`");
    }
    if let Some(abi) = &sig.abi {
        errors.error(abi, "an upcaster cannot have an `extern` ABI");
    }

    let mut from = None;
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        None => errors.error(
            &sig.ident,
            format!("an upcaster takes the old version as its one parameter. {SIGNATURE}"),
        ),
        Some(FnArg::Receiver(receiver)) => errors.error(
            receiver,
            format!("an upcaster cannot take `self`: make it a free function. {SIGNATURE}"),
        ),
        Some(FnArg::Typed(typed)) => match &*typed.ty {
            Type::Reference(reference) if reference.mutability.is_some() => errors.error(
                reference,
                "an upcaster reads the old version by shared reference `&T`, not `&mut T`: \
                 handlers of the old version still receive it as it was",
            ),
            Type::Reference(reference) => from = Some(&*reference.elem),
            other => errors.error(
                other,
                format!(
                    "an upcaster takes the old version by reference: write `&{}` (handlers \
                     of the old version still receive the original)",
                    quote::ToTokens::to_token_stream(other)
                        .to_string()
                        .replace(' ', "")
                ),
            ),
        },
    }
    for extra in inputs {
        errors.error(
            extra,
            format!("an upcaster takes exactly one parameter, the old version. {SIGNATURE}"),
        );
    }
    let to = match &sig.output {
        ReturnType::Type(_, ty) if !matches!(&**ty, Type::Reference(_) | Type::Tuple(_)) => {
            Some(&**ty)
        }
        ReturnType::Type(_, ty) => {
            errors.error(
                ty,
                format!("an upcaster returns the next version by value. {SIGNATURE}"),
            );
            None
        }
        ReturnType::Default => {
            errors.error(
                &sig.ident,
                format!("an upcaster returns the next version. {SIGNATURE}"),
            );
            None
        }
    };
    match (from, to) {
        (Some(from), Some(to)) if errors.is_empty() => Some(UpcastDef {
            func,
            from,
            to,
            krate: krate.take().unwrap_or_else(attr::default_crate),
        }),
        _ => None,
    }
}
