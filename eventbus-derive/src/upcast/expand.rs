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
    // Read through probes: a type that is not an event is reported once, by the `UpcastFn`
    // impl below (spanned at the type), not again here.
    let probe = |ty: &syn::Type| {
        quote_spanned!(ty.span()=> || {
            #[allow(unused_imports)]
            use #private::{IsEvent as _, NotEvent as _};
            (&&#private::EventProbe::<#ty>::new()).event_type()
        })
    };
    let (from_type, to_type) = (probe(from), probe(to));
    // The two types are named once, in this impl: a type that is not an event is one error,
    // at the type, and both entry points below call the fn directly.
    let (old_ty, new_ty) = (
        quote_spanned!(from.span()=> type Old = #from;),
        quote_spanned!(to.span()=> type New = #to;),
    );
    quote! {
        #func

        const _: () = {
            const NAME: &str =
                ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident));
            struct EventbusUpcast;
            impl #private::UpcastFn for EventbusUpcast {
                #old_ty
                #new_ty
                #[inline(always)]
                fn upcast(old: &Self::Old) -> Self::New {
                    #ident(old)
                }
            }
            #private::inventory::submit! {
                #private::UpcasterRegistration::new(
                    #from_type,
                    #to_type,
                    #private::upcast_erased::<EventbusUpcast>,
                    NAME,
                    ::core::file!(),
                    ::core::line!(),
                )
            }
            // The same fn compiled with the inline dispatch of the version it makes.
            #private::inventory::submit! {
                #private::InlineUpcaster::new(
                    #from_type,
                    NAME,
                    #private::upcast_then::<EventbusUpcast>,
                )
            }
        };
    }
}
