//! Parsing of `key = value` attribute arguments shared by `#[event(..)]`, `#[handler(..)]` and
//! `#[saga(..)]`.
//!
//! Every key is set through [`Slot::set`], the one place where a repeated key is reported.

use crate::errors::Errors;

/// Every attribute key of `#[event(..)]`, `#[handler(..)]` and `#[saga(..)]`, spelled once.
pub(crate) mod keys {
    pub(crate) const EXTENDS: &str = "extends";
    pub(crate) const NAME: &str = "name";
    pub(crate) const VERSION: &str = "version";
    pub(crate) const DISTRIBUTED: &str = "distributed";
    pub(crate) const CRATE: &str = "crate";
    pub(crate) const BASE: &str = "base";
    pub(crate) const PRIORITY: &str = "priority";
    pub(crate) const TIMEOUT_MS: &str = "timeout_ms";
    pub(crate) const RETRY: &str = "retry";
    pub(crate) const BACKOFF_MS: &str = "backoff_ms";
    pub(crate) const ON_ERROR: &str = "on_error";
    pub(crate) const KEY: &str = "key";
    pub(crate) const START: &str = "start";
    pub(crate) const STEP: &str = "step";
    pub(crate) const BY: &str = "by";
    pub(crate) const PUBLISHES: &str = "publishes";
}
use proc_macro2::Span;
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ExprUnary, Lit, LitInt, LitStr, UnOp};

/// One attribute key: remembers the first value and where it was written.
pub(crate) struct Slot<T> {
    key: &'static str,
    value: Option<(Span, T)>,
}

impl<T> Slot<T> {
    pub(crate) fn new(key: &'static str) -> Self {
        Slot { key, value: None }
    }

    pub(crate) fn set(&mut self, span: Span, value: T, errors: &mut Errors) {
        if self.value.is_some() {
            errors.push(syn::Error::new(
                span,
                format!("duplicate `{}` attribute; give it once", self.key),
            ));
        } else {
            self.value = Some((span, value));
        }
    }

    pub(crate) fn get(&self) -> Option<&T> {
        self.value.as_ref().map(|(_, v)| v)
    }

    pub(crate) fn span(&self) -> Option<Span> {
        self.value.as_ref().map(|(s, _)| *s)
    }

    pub(crate) fn take(self) -> Option<T> {
        self.value.map(|(_, v)| v)
    }
}

/// The error for a key that is not one of `expected`, with a suggestion when it is a near miss.
pub(crate) fn unknown_key(meta: &ParseNestedMeta, what: &str, expected: &[&str]) -> syn::Error {
    let found = meta
        .path
        .get_ident()
        .map(ToString::to_string)
        .unwrap_or_else(|| meta.path.to_token_stream().to_string());
    let list = expected
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let hint = expected
        .iter()
        .find(|k| edit_distance(k, &found) <= 2)
        .map(|k| format!("; did you mean `{k}`?"))
        .unwrap_or_default();
    meta.error(format!(
        "unknown {what} attribute `{found}`: expected one of {list}{hint}"
    ))
}

/// The path of eventbus-core in generated code when no `crate = path` is given.
pub(crate) fn default_crate() -> syn::Path {
    syn::parse_quote!(::eventbus_core)
}

/// Parses `crate = path` (`crate = my_framework::eventbus`), the path of eventbus-core as a
/// crate that re-exports it names it.
pub(crate) fn crate_path(meta: &ParseNestedMeta) -> syn::Result<syn::Path> {
    meta.value()?.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            "`crate` takes the path of eventbus-core as your crate re-exports it, e.g. `crate = my_framework::eventbus`",
        )
    })
}

/// A value as written, seen through the invisible group a `macro_rules!` fragment
/// (`$name:literal`) wraps it in.
fn value(meta: &ParseNestedMeta) -> syn::Result<Expr> {
    let mut expr: Expr = meta.value()?.parse()?;
    while let Expr::Group(group) = expr {
        expr = *group.expr;
    }
    Ok(expr)
}

/// Parses `= "text"`.
pub(crate) fn string_value(meta: &ParseNestedMeta, key: &str) -> syn::Result<LitStr> {
    let expr = value(meta)?;
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s),
        other => Err(syn::Error::new(
            other.span(),
            format!("`{key}` takes a string literal, e.g. `{key} = \"orders.placed\"`"),
        )),
    }
}

/// Parses `= 10`, `= -10` as an integer of type `N`, with the span of the literal (for errors
/// about its value); `example` shows a valid use in the error.
pub(crate) fn int_value<N>(
    meta: &ParseNestedMeta,
    key: &str,
    example: &str,
) -> syn::Result<(N, Span)>
where
    N: std::str::FromStr,
    N::Err: std::fmt::Display,
{
    let expr = value(meta)?;
    let wrong = |span: Span| {
        syn::Error::new(
            span,
            format!("`{key}` takes an integer literal, e.g. `{key} = {example}`"),
        )
    };
    let (negative, lit): (bool, &LitInt) = match &expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => (false, i),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => match &**expr {
            Expr::Lit(ExprLit {
                lit: Lit::Int(i), ..
            }) => (true, i),
            _ => return Err(wrong(expr.span())),
        },
        _ => return Err(wrong(expr.span())),
    };
    let digits = if negative {
        format!("-{}", lit.base10_digits())
    } else {
        lit.base10_digits().to_owned()
    };
    digits
        .parse::<N>()
        .map(|n| (n, expr.span()))
        .map_err(|e| syn::Error::new(expr.span(), format!("invalid `{key}`: {e}")))
}

/// [`int_value`] for a key where 0 means nothing: a zero is reported at the literal with
/// `zero` (the value is still returned, so parsing goes on).
pub(crate) fn nonzero_int<N>(
    meta: &ParseNestedMeta,
    key: &str,
    example: &str,
    zero: &str,
    errors: &mut Errors,
) -> syn::Result<N>
where
    N: std::str::FromStr + Default + PartialEq,
    N::Err: std::fmt::Display,
{
    let (value, literal) = int_value::<N>(meta, key, example)?;
    if value == N::default() {
        errors.push(syn::Error::new(literal, zero));
    }
    Ok(value)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
