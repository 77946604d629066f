//! Code generation for `#[upcast]`: the user's fn unchanged, plus a link-time registration.

use super::UpcastDef;
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

pub(super) fn expand(def: &UpcastDef) -> TokenStream {
    let func = def.func;
    let ident = &func.sig.ident;
    let krate = &def.krate;
    let private = quote!(#krate::__private);
    let (from, to) = (def.from, def.to);
    // Read through probes: a type that is not an event is reported once, by `upcast_with`
    // (spanned at the type), not again here.
    let probe = |ty: &syn::Type| {
        quote_spanned!(ty.span()=> || {
            #[allow(unused_imports)]
            use #private::{IsEvent as _, NotEvent as _};
            (&&#private::EventProbe::<#ty>::new()).event_type()
        })
    };
    let (from_type, to_type) = (probe(from), probe(to));
    let call = quote_spanned!(from.span()=> #private::upcast_with::<#from, #to>(part, #ident));
    quote! {
        #func

        const _: () = {
            fn __eventbus_upcast(part: &#private::EventPart) -> #private::Upcasted {
                #call
            }
            #private::inventory::submit! {
                #private::UpcasterRegistration::new(
                    #from_type,
                    #to_type,
                    __eventbus_upcast,
                    ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident)),
                    ::core::file!(),
                    ::core::line!(),
                )
            }
        };
    }
}
