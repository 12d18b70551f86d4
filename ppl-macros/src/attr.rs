//! Arguments of `#[model(..)]` and `#[guide(..)]`, and the hidden `__ppl_check(..)` form of
//! `#[guide]` that compares two site tables.

use crate::args::parse_name_list;
use crate::check::suggest;
use crate::sites::Role;
use crate::table::Table;
use syn::parse::{ParseStream, Parser};
use syn::{Ident, LitStr, Token};

mod kw {
    syn::custom_keyword!(model);
    syn::custom_keyword!(guide);
    syn::custom_keyword!(helper_sites);
    syn::custom_keyword!(__ppl_check);
}

/// The arguments of `#[model(..)]` / `#[guide(..)]`.
#[derive(Default)]
pub struct FnArgs {
    /// `crate = path`: where the `ppl` crate is (default `::ppl`).
    pub krate: Option<syn::Path>,
    /// `model = path` (guides only).
    pub model: Option<syn::Path>,
    /// `helper_sites = ["a", ..]`: site names that helper functions provide, exempt from the check.
    pub helpers: Vec<LitStr>,
}

/// What the attribute was asked to do.
pub enum AttrInput {
    /// Annotate a function.
    Function(FnArgs),
    /// Compare the tables of a model and a guide (emitted by the model's table macro).
    Check {
        /// The model's table.
        model: Box<Table>,
        /// The guide's table.
        guide: Box<Table>,
    },
}

fn allowed(role: Role) -> &'static [&'static str] {
    match role {
        Role::Model => &["crate", "helper_sites"],
        Role::Guide => &["model", "crate", "helper_sites"],
    }
}

fn attr_name(role: Role) -> &'static str {
    match role {
        Role::Model => "#[model]",
        Role::Guide => "#[guide]",
    }
}

fn duplicate(span: proc_macro2::Span, key: &str) -> syn::Error {
    syn::Error::new(span, format!("argument `{key}` is given twice"))
}

fn parse_fn_args(role: Role, input: ParseStream) -> syn::Result<FnArgs> {
    let mut args = FnArgs::default();
    let mut helpers_seen = false;
    while !input.is_empty() {
        let lookahead = input.lookahead1();
        if lookahead.peek(Token![crate]) {
            let key: Token![crate] = input.parse()?;
            input.parse::<Token![=]>()?;
            if args.krate.is_some() {
                return Err(duplicate(key.span, "crate"));
            }
            args.krate = Some(input.call(syn::Path::parse_mod_style)?);
        } else if lookahead.peek(kw::helper_sites) {
            let key: kw::helper_sites = input.parse()?;
            input.parse::<Token![=]>()?;
            if helpers_seen {
                return Err(duplicate(key.span, "helper_sites"));
            }
            helpers_seen = true;
            args.helpers = parse_name_list(input)?;
        } else if lookahead.peek(kw::model) {
            let key: kw::model = input.parse()?;
            if role == Role::Model {
                return Err(syn::Error::new(
                    key.span,
                    "`model = ..` belongs on the guide: `#[guide(model = path::to::model)]`",
                ));
            }
            input.parse::<Token![=]>()?;
            if args.model.is_some() {
                return Err(duplicate(key.span, "model"));
            }
            args.model = Some(input.parse()?);
        } else if input.peek(Ident) {
            let key: Ident = input.parse()?;
            let list = allowed(role);
            let names: Vec<String> = list.iter().map(|k| format!("`{k}`")).collect();
            let key_s = key.to_string();
            let hint = suggest(&key_s, list.iter().copied()).map(|s| format!("; did you mean `{s}`?")).unwrap_or_default();
            return Err(syn::Error::new(
                key.span(),
                format!(
                    "unknown argument `{key_s}` for `{}`; expected one of {}{hint}",
                    attr_name(role),
                    names.join(", ")
                ),
            ));
        } else {
            return Err(lookahead.error());
        }
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(args)
}

fn parse_check(input: ParseStream) -> syn::Result<AttrInput> {
    input.parse::<kw::__ppl_check>()?;
    let content;
    syn::parenthesized!(content in input);
    content.parse::<kw::model>()?;
    content.parse::<Token![=]>()?;
    let model = content.parse()?;
    content.parse::<Token![,]>()?;
    content.parse::<kw::guide>()?;
    content.parse::<Token![=]>()?;
    let guide = content.parse()?;
    Ok(AttrInput::Check { model: Box::new(model), guide: Box::new(guide) })
}

/// Parses the attribute's arguments for `role`.
pub fn parse_attr(role: Role, tokens: proc_macro2::TokenStream) -> syn::Result<AttrInput> {
    (|input: ParseStream| {
        if role == Role::Guide && input.peek(kw::__ppl_check) {
            parse_check(input)
        } else {
            parse_fn_args(role, input).map(AttrInput::Function)
        }
    })
    .parse2(tokens)
}
