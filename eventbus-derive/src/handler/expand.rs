//! Code generation for `#[handler]`: the user's fn unchanged, plus a link-time registration.

use super::{HandlerDef, Param};
use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{Lifetime, ReturnType, Type};

pub(super) fn expand(def: &HandlerDef) -> TokenStream {
    let func = def.func;
    let ident = &func.sig.ident;
    let krate = &def.krate;
    let private = quote!(#krate::__private);

    let mut event_ty = None;
    let mut declares = Vec::new();
    let mut bindings = Vec::new();
    let mut args = Vec::new();
    for (index, param) in def.params.iter().enumerate() {
        let arg = format_ident!("__arg{}", index);
        match param {
            Param::Event(ty) => {
                event_ty = Some(*ty);
                bindings.push(quote_spanned!(ty.span()=>
                    let #arg: &'a #ty = #private::event_part::<#ty>(event);
                ));
            }
            Param::Extracted(ty) => {
                // The user's own lifetime names mean nothing in the generated fns.
                let ty = &erase_lifetimes(ty);
                declares.push(quote_spanned!(ty.span()=>
                    <#ty as #private::HandlerParam>::declare(states);
                ));
                bindings.push(quote_spanned!(ty.span()=>
                    let #arg: #ty = <#ty as #private::HandlerParam>::extract(ctx, &mut cursor);
                ));
            }
        }
        args.push(arg);
    }
    let event_ty = event_ty.expect("validated: one event parameter");

    let output_span = match &func.sig.output {
        ReturnType::Default => ident.span(),
        ReturnType::Type(_, ty) => ty.span(),
    };
    let (return_ty, call, kind) = if func.sig.asyncness.is_some() {
        let into = quote_spanned!(output_span=>
            #private::IntoHandlerResult::into_handler_result(result)
        );
        let boxed = quote_spanned!(ident.span()=>
            ::std::boxed::Box::pin(async move {
                let result = #ident(#(#args),*).await;
                #into
            })
        );
        (
            quote!(#private::BoxFuture<'a, #private::HandlerResult>),
            boxed,
            quote!(Async),
        )
    } else {
        (
            quote!(#private::HandlerResult),
            {
                let into = quote_spanned!(output_span=>
                    #private::IntoHandlerResult::into_handler_result(result)
                );
                quote! {
                    let result = #ident(#(#args),*);
                    #into
                }
            },
            quote!(Sync),
        )
    };

    let fn_path = quote!(::core::concat!(
        ::core::module_path!(),
        "::",
        ::core::stringify!(#ident)
    ));
    let name = match &def.name {
        Some(lit) => quote!(#lit),
        None => fn_path.clone(),
    };
    // Spanned at the fn's name: its own line, not the attribute's.
    let line = quote_spanned!(ident.span()=> ::core::line!());
    let priority = def.priority;
    let mut policy = quote!(#private::HandlerPolicy::new());
    if let Some(ms) = def.timeout_ms {
        policy = quote!(#policy.timeout_ms(#ms));
    }
    if let Some(retries) = def.retry {
        policy = quote!(#policy.retries(#retries));
    }
    if let Some(ms) = def.backoff_ms {
        policy = quote!(#policy.backoff_ms(#ms));
    }
    if let Some(path) = &def.on_error {
        // Spanned at the path: a callback of the wrong shape is reported there.
        let callback = quote_spanned!(path.span()=> {
            let callback: for<'a> fn(&#krate::HandlerFailure, #krate::Context<'a>) = #path;
            callback
        });
        policy = quote!(#policy.on_error(#callback));
    }
    let event_type = quote_spanned!(event_ty.span()=> <#event_ty as #krate::Event>::TYPE);
    // Each spanned at its type: one that is not an event is reported there.
    let publishes = def
        .publishes
        .iter()
        .map(|ty| quote_spanned!(ty.span()=> <#ty as #krate::Event>::TYPE));

    quote! {
        #func

        #[allow(non_snake_case, unused_qualifications, unused_variables, unused_mut, clippy::needless_lifetimes)]
        const _: () = {
            fn __eventbus_declare(states: &mut #private::StateKeys) {
                #(#declares)*
            }

            // The state is taken before any future is made: the future never borrows it.
            fn __eventbus_call<'a>(
                event: &'a #private::EventPart,
                ctx: #krate::Context<'a>,
                states: &[#private::SharedState],
            ) -> #return_ty {
                let mut cursor = #private::StateCursor::new(states);
                #(#bindings)*
                #call
            }

            #private::inventory::submit! {
                #private::HandlerRegistration::new(
                    #name,
                    #fn_path,
                    (::core::file!(), #line),
                    ::core::module_path!(),
                    #event_type,
                    #priority,
                    __eventbus_declare,
                    #private::HandlerFn::#kind(__eventbus_call),
                    #policy,
                )
                .publishes(&[#(#publishes),*])
            }
        };
    }
}

fn erase_lifetimes(ty: &Type) -> Type {
    struct Erase;
    impl VisitMut for Erase {
        fn visit_lifetime_mut(&mut self, lifetime: &mut Lifetime) {
            *lifetime = Lifetime::new("'_", lifetime.apostrophe);
        }
    }
    let mut ty = ty.clone();
    Erase.visit_type_mut(&mut ty);
    ty
}
