//! Code generation for `#[derive(Event)]`.

use super::EventDef;
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

pub(super) fn expand(def: &EventDef) -> TokenStream {
    let ident = def.ident;
    let krate = &def.krate;
    let name = match &def.name {
        Some(lit) => quote!(::core::option::Option::Some(#lit)),
        None => quote!(::core::option::Option::None),
    };
    let version = def.version.unwrap_or(1);
    let (parent_type, ancestor_at, ancestor_at_mut) = match &def.parent {
        Some(parent) => {
            let path = &parent.path;
            let member = &parent.member;
            // Spanned at `extends = X`: a non-event parent is reported there.
            // A fn, not the constant itself: see `EventType::parent`.
            let parent_type = quote_spanned!(path.span()=>
                ::core::option::Option::Some({
                    fn parent() -> &'static #krate::EventType {
                        <#path as #krate::Event>::TYPE
                    }
                    parent
                })
            );
            // Spanned at the base field's type: a field of another type than `extends` is reported there.
            let base_ref = quote_spanned!(parent.field_ty.span()=> {
                let base: &#path = &self.#member;
                base
            });
            let ancestor_at = quote! {
                match level {
                    0 => ::core::option::Option::Some(#krate::__private::as_part(self)),
                    _ => <#path as #krate::Event>::ancestor_at(#base_ref, level - 1),
                }
            };
            // Through the field's own type: `ancestor_at` above already reports a mismatch.
            let field_ty = parent.field_ty;
            let ancestor_at_mut = quote! {
                match level {
                    0 => ::core::option::Option::Some(#krate::__private::as_part_mut(self)),
                    _ => <#field_ty as #krate::Event>::ancestor_at_mut(&mut self.#member, level - 1),
                }
            };
            (parent_type, ancestor_at, ancestor_at_mut)
        }
        None => (
            quote!(::core::option::Option::None),
            quote! {
                match level {
                    0 => ::core::option::Option::Some(#krate::__private::as_part(self)),
                    _ => ::core::option::Option::None,
                }
            },
            quote! {
                match level {
                    0 => ::core::option::Option::Some(#krate::__private::as_part_mut(self)),
                    _ => ::core::option::Option::None,
                }
            },
        ),
    };

    // Spanned at `distributed`: a type that is not serde-able is reported there.
    let wire = def.distributed.map(|span| {
        let ident = syn::Ident::new(&ident.to_string(), span);
        quote_spanned! {span=>
            const _: () = {
                fn __eventbus_schema() -> ::core::option::Option<fn() -> #krate::__private::SchemaValue> {
                    #[allow(unused_imports)]
                    use #krate::__private::{HasSchema as _, NoSchema as _};
                    (&&#krate::__private::SchemaProbe::<#ident>::new()).schema()
                }
                #krate::__private::inventory::submit! {
                    #krate::__private::WireRegistration::new(
                        <#ident as #krate::Event>::TYPE,
                        #krate::__private::encode_event::<#ident>,
                        #krate::__private::decode_event::<#ident>,
                        __eventbus_schema,
                    )
                }
            };
        }
    });

    // Each field checked at its own span: one error there names the bound it lacks.
    let field_checks = def
        .field_types
        .iter()
        .map(|ty| quote_spanned!(ty.span()=> #krate::__private::assert_event_field::<#ty>();));

    quote! {
        #wire

        const _: () = {
            #(#field_checks)*
        };

        #[automatically_derived]
        #[allow(unused_qualifications)]
        impl #krate::Event for #ident
        where
            // Under a binder, so a field that is not `Send + Sync` is reported once, at the
            // field (above), and not again here for every use of the bound.
            for<'__eventbus> #ident: ::core::marker::Send + ::core::marker::Sync,
        {
            const TYPE: &'static #krate::EventType = &#krate::__private::EventType::new(
                #name,
                #version,
                #krate::__private::type_name::<#ident>,
                #krate::__private::type_id::<#ident>,
                #parent_type,
            );

            #[inline]
            fn ancestor_at(&self, level: usize)
                -> ::core::option::Option<&(dyn ::core::any::Any + ::core::marker::Send + ::core::marker::Sync)>
            {
                #ancestor_at
            }

            #[inline]
            fn ancestor_at_mut(&mut self, level: usize)
                -> ::core::option::Option<&mut (dyn ::core::any::Any + ::core::marker::Send + ::core::marker::Sync)>
            {
                #ancestor_at_mut
            }

            fn clone_event(&self) -> ::core::option::Option<#krate::__private::AnyEvent> {
                // Autoref specialisation: picks `Clone::clone` when the type is `Clone`, else `None`.
                #[allow(unused_imports)]
                use #krate::__private::{CloneIfClone as _, CloneUnavailable as _};
                (&&#krate::__private::CloneProbe(self)).clone_event()
            }
        }

        const _: () = {
            fn __eventbus_event_type() -> ::core::option::Option<&'static #krate::EventType> {
                #[allow(unused_imports)]
                use #krate::__private::{IsEvent as _, NotEvent as _};
                (&&#krate::__private::EventProbe::<#ident>::new()).event_type()
            }
            #krate::__private::inventory::submit! {
                #krate::__private::EventRegistration::new(
                    __eventbus_event_type,
                    ::core::module_path!(),
                )
            }
        };
    }
}
