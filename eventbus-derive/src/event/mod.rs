//! `#[derive(Event)]`: parse the struct into [`EventDef`], validating as we go, then expand.

mod expand;

use crate::attr::keys::{BASE, CRATE, DISTRIBUTED, EXTENDS, NAME, VERSION};
use crate::attr::{self, Slot};
use crate::errors::Errors;
use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Fields, Ident, LitStr, Member, Path, Type};

const ATTR: &str = "event";
const CONTAINER_KEYS: &[&str] = &[EXTENDS, NAME, VERSION, DISTRIBUTED, CRATE];
const FIELD_KEYS: &[&str] = &[BASE];

/// A validated event struct.
pub(crate) struct EventDef<'a> {
    pub ident: &'a Ident,
    pub name: Option<LitStr>,
    pub version: Option<u32>,
    pub parent: Option<Parent<'a>>,
    /// Every field's type, each checked to be `Send + Sync + 'static` at its own span.
    pub field_types: Vec<&'a Type>,
    /// `#[event(distributed)]`: where it was written, for errors about serde.
    pub distributed: Option<Span>,
    /// The path of eventbus-core in generated code: `crate = path` for a crate that
    /// re-exports it, `::eventbus_core` by default.
    pub krate: Path,
}

/// `extends = Path` together with the `#[event(base)]` field that holds the parent part.
pub(crate) struct Parent<'a> {
    pub path: Path,
    pub member: Member,
    pub field_ty: &'a Type,
}

pub(crate) fn derive(input: &DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let def = parse(input, &mut errors);
    let errors = errors.to_compile_errors();
    match def {
        Some(def) => {
            let expanded = expand::expand(&def);
            quote::quote!(#errors #expanded)
        }
        None => errors,
    }
}

/// Returns `None` only when no impl can be generated at all; otherwise a definition to expand
/// (possibly a fallback one) so that one mistake does not cascade into "not an Event" errors.
fn parse<'a>(input: &'a DeriveInput, errors: &mut Errors) -> Option<EventDef<'a>> {
    let mut extends = Slot::<Path>::new(EXTENDS);
    let mut name = Slot::<LitStr>::new(NAME);
    let mut version = Slot::<u32>::new(VERSION);
    let mut distributed = Slot::<()>::new(DISTRIBUTED);
    let mut krate = Slot::<Path>::new(CRATE);
    let mut container_failed = false;
    for attr in event_attrs(&input.attrs) {
        let result = attr.parse_nested_meta(|meta| {
            let span = meta.path.span();
            if meta.path.is_ident(EXTENDS) {
                let path: Path = meta.value()?.parse().map_err(|e| {
                    syn::Error::new(
                        e.span(),
                        "`extends` takes the parent event type, e.g. `extends = OrderEvent`",
                    )
                })?;
                extends.set(span, path, errors);
            } else if meta.path.is_ident(NAME) {
                let lit = attr::string_value(&meta, NAME)?;
                if lit.value().trim().is_empty() {
                    errors.error(&lit, "event `name` must not be empty");
                }
                name.set(span, lit, errors);
            } else if meta.path.is_ident(VERSION) {
                let value = attr::nonzero_int(
                    &meta,
                    VERSION,
                    "2",
                    "event versions start at 1: the first version is `version = 1` (the default)",
                    errors,
                )?;
                version.set(span, value, errors);
            } else if meta.path.is_ident(DISTRIBUTED) {
                distributed.set(span, (), errors);
            } else if meta.path.is_ident(CRATE) {
                krate.set(span, attr::crate_path(&meta)?, errors);
            } else if meta.path.is_ident(BASE) {
                return Err(meta.error(
                    "`base` marks a field, not the struct: put `#[event(base)]` on the field that holds the parent event",
                ));
            } else {
                return Err(attr::unknown_key(&meta, "event", CONTAINER_KEYS));
            }
            Ok(())
        });
        if let Err(e) = result {
            container_failed = true;
            errors.push(e);
        }
    }

    let fields = match &input.data {
        Data::Struct(data) => &data.fields,
        Data::Enum(data) => {
            errors.error(
                data.enum_token,
                "`#[derive(Event)]` supports structs only: make each variant its own event struct, \
                 and give them a common parent with `#[event(extends = ..)]`",
            );
            return None;
        }
        Data::Union(data) => {
            errors.error(
                data.union_token,
                "`#[derive(Event)]` supports structs only, not unions",
            );
            return None;
        }
    };
    if !input.generics.params.is_empty() {
        errors.error(
            &input.generics,
            "an event cannot be generic: its name and version must identify one concrete type; \
             define one struct per event",
        );
        return None;
    }

    if let Some(path) = extends.get() {
        if path.is_ident(&input.ident) || path.is_ident("Self") {
            errors.error(
                path,
                "an event cannot extend itself: `extends` names its parent event type",
            );
            return None;
        }
    }

    let (base, field_failed) = base_field(fields, errors);
    let parent = match (extends.span(), extends.take(), base) {
        (Some(_), Some(path), Some((member, field_ty, _))) => Some(Parent {
            path,
            member,
            field_ty,
        }),
        // A malformed field attribute may have been meant as the base: do not pile on.
        (Some(_), Some(_), None) if field_failed => None,
        (Some(span), Some(path), None) => {
            let parent = quote::ToTokens::to_token_stream(&path)
                .to_string()
                .replace(' ', "");
            errors.push(syn::Error::new(
                span.join(path.span()).unwrap_or(span),
                format!(
                    "`extends = {parent}` needs a field that holds the parent part: \
                     add `#[event(base)] pub base: {parent}`"
                ),
            ));
            None
        }
        // A malformed struct attribute may have been meant as `extends`: do not pile on.
        (_, _, Some(_)) if container_failed => None,
        (_, _, Some((_, field_ty, attr_span))) => {
            let parent = quote::ToTokens::to_token_stream(field_ty)
                .to_string()
                .replace(' ', "");
            errors.push(syn::Error::new(
                attr_span,
                format!(
                    "`#[event(base)]` field without a parent: add `#[event(extends = {parent})]` \
                     to the struct"
                ),
            ));
            None
        }
        _ => None,
    };

    Some(EventDef {
        ident: &input.ident,
        name: name.take(),
        version: version.get().copied(),
        parent,
        field_types: fields.iter().map(|f| &f.ty).collect(),
        distributed: distributed.span(),
        krate: krate.take().unwrap_or_else(attr::default_crate),
    })
}

/// Finds the one `#[event(base)]` field: its member, type and the span of its `base` key; and
/// whether any field attribute was malformed.
fn base_field<'a>(
    fields: &'a Fields,
    errors: &mut Errors,
) -> (Option<(Member, &'a Type, Span)>, bool) {
    let mut found: Option<(Member, &Type, Span)> = None;
    let mut failed = false;
    for (index, field) in fields.iter().enumerate() {
        for attr in event_attrs(&field.attrs) {
            let result = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident(BASE) {
                    if found.is_some() {
                        return Err(meta.error(
                            "only one field can be `#[event(base)]`: an event extends exactly one parent",
                        ));
                    }
                    let member = match &field.ident {
                        Some(ident) => Member::Named(ident.clone()),
                        None => Member::Unnamed(syn::Index {
                            index: index as u32,
                            span: field.ty.span(),
                        }),
                    };
                    found = Some((member, &field.ty, meta.path.span()));
                    Ok(())
                } else if CONTAINER_KEYS.iter().any(|k| meta.path.is_ident(k)) {
                    let key = meta.path.clone();
                    let _ = meta.value().and_then(|v| v.parse::<TokenStream>());
                    Err(syn::Error::new_spanned(
                        key,
                        "this key belongs on the struct, not on a field: move it to `#[event(..)]` above the struct",
                    ))
                } else {
                    Err(attr::unknown_key(&meta, "event field", FIELD_KEYS))
                }
            });
            if let Err(e) = result {
                failed = true;
                errors.push(e);
            }
        }
    }
    (found, failed)
}

fn event_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|a| a.path().is_ident(ATTR))
}
