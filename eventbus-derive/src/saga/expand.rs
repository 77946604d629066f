//! Code generation for `#[saga]`: the `impl` block, the `Saga` impl that declares its steps,
//! and a link-time registration.

use super::SagaDef;
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

pub(super) fn expand(def: &SagaDef, block: &syn::ItemImpl) -> TokenStream {
    let self_ty = &block.self_ty;
    let krate = &def.krate;
    let private = quote!(#krate::__private);
    let key = &def.key;
    let name = match &def.name {
        Some(lit) => quote!(#lit),
        None => {
            let last = match &**self_ty {
                syn::Type::Path(path) => path.path.segments.last().map(|s| s.ident.to_string()),
                _ => None,
            };
            let last = last.unwrap_or_else(|| quote!(#self_ty).to_string());
            quote!(#last)
        }
    };
    let steps = def.steps.iter().map(|step| {
        let event = &step.event;
        let method = &step.method;
        // Each field spanned where it is written: a missing one, or one of another type than
        // the key, is reported there.
        let last = step.by.last().expect("a path has a field");
        let fields = step.by.iter().map(|field| quote_spanned!(field.span()=> .#field));
        let declare = if step.starts { quote!(start) } else { quote!(step) };
        let method_name = method.to_string();
        let correlate = quote_spanned!(last.span()=>
            |event: &#event| -> ::std::string::String {
                let key: &#key = &event #(#fields)*;
                ::std::string::ToString::to_string(key)
            }
        );
        // Spanned at the method: a wrong return type is reported at its name.
        let run = quote_spanned!(method.span()=>
            |state: &mut #self_ty, event: &#event, ctx: &mut #krate::saga::SagaContext<'_>| {
                #private::IntoHandlerResult::into_handler_result(<#self_ty>::#method(state, event, ctx))
            }
        );
        quote! {
            steps.#declare::<#event>(#method_name, #correlate, #run);
        }
    });

    quote! {
        #block

        #[allow(unused_qualifications, clippy::needless_lifetimes)]
        const _: () = {
            impl #krate::saga::Saga for #self_ty {
                type Key = #key;
                const NAME: &'static str = #name;

                fn steps(steps: &mut #krate::saga::Steps<Self>) {
                    #(#steps)*
                }
            }

            #private::inventory::submit! {
                #krate::saga::SagaRegistration {
                    name: #name,
                    module_path: ::core::module_path!(),
                    add: #krate::saga::SagasBuilder::saga::<#self_ty>,
                }
            }
        };
    }
}
