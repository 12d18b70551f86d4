//! The site table a `#[model]` hands to the `#[guide]`s that name it, as tokens.
//!
//! `#[model] fn m` emits a hidden `macro_rules! __ppl_model_m` holding `m`'s table. A
//! `#[guide(model = path::m)]` invokes `path::__ppl_model_m! { guide = { .. } }` with its own
//! table; the model's macro answers with `#[::ppl::guide(__ppl_check(model = {..}, guide = {..}))]`
//! on a dummy item, and that invocation of the attribute compares the two tables. Site-name
//! literals keep the spans the user wrote, so errors point into the guide.
//!
//! Grammar: `{ name = ident, [path = path,] sites = [site, ..], helpers = ["..", ..] }` where
//! `site = kind "name" latent|observed ["plate", ..] known|unknown infer|plain`.

use crate::args::parse_name_list;
use crate::sites::{Kind, Site};
use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Ident, LitStr, Token};

mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(path);
    syn::custom_keyword!(sites);
    syn::custom_keyword!(helpers);
}

/// One site of a table.
#[derive(Clone)]
pub struct TableSite {
    /// Its kind.
    pub kind: Kind,
    /// The name literal (with the user's span).
    pub name: LitStr,
    /// Whether it is observed.
    pub observed: bool,
    /// Literal plate names around it, outermost first.
    pub plates: Vec<LitStr>,
    /// False when a plate around it has a dynamic name.
    pub plates_known: bool,
    /// It has `enumerate =`/`infer =`: possibly enumerated (model) or auxiliary (guide).
    pub infer: bool,
}

impl From<&Site> for TableSite {
    fn from(s: &Site) -> Self {
        TableSite {
            kind: s.kind,
            name: s.name.clone(),
            observed: s.obs.is_some() || s.kind == Kind::Factor,
            plates: s.plates.clone(),
            plates_known: s.plates_known,
            infer: s.infer,
        }
    }
}

/// The site table of one model or guide.
#[derive(Clone)]
pub struct Table {
    /// The function's name.
    pub name: Ident,
    /// For a guide: the `model = path` it names (errors about missing sites point at it).
    pub path: Option<syn::Path>,
    /// Its literal sites.
    pub sites: Vec<TableSite>,
    /// Site names it declares to come from helpers (`helper_sites = [..]`): exempt from checks.
    pub helpers: Vec<LitStr>,
}

impl ToTokens for TableSite {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        let kind = Ident::new(self.kind.word(), proc_macro2::Span::call_site());
        let obs = Ident::new(if self.observed { "observed" } else { "latent" }, proc_macro2::Span::call_site());
        let known = Ident::new(if self.plates_known { "known" } else { "unknown" }, proc_macro2::Span::call_site());
        let infer = Ident::new(if self.infer { "infer" } else { "plain" }, proc_macro2::Span::call_site());
        let (name, plates) = (&self.name, &self.plates);
        tokens.extend(quote! { #kind #name #obs [#(#plates),*] #known #infer });
    }
}

impl ToTokens for Table {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        let (name, sites, helpers) = (&self.name, &self.sites, &self.helpers);
        let path = self.path.as_ref().map(|p| quote! { path = #p, });
        tokens.extend(quote! { { name = #name, #path sites = [#(#sites),*], helpers = [#(#helpers),*] } });
    }
}

fn flag(input: ParseStream, yes: &str, no: &str) -> syn::Result<bool> {
    let id: Ident = input.parse()?;
    if id == yes {
        Ok(true)
    } else if id == no {
        Ok(false)
    } else {
        Err(syn::Error::new(id.span(), format!("ppl internal: expected `{yes}` or `{no}`")))
    }
}

impl Parse for TableSite {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let kind_id: Ident = input.parse()?;
        let kind = Kind::from_word(&kind_id.to_string())
            .ok_or_else(|| syn::Error::new(kind_id.span(), "ppl internal: unknown site kind"))?;
        let name = input.parse()?;
        let observed = flag(input, "observed", "latent")?;
        let plates = parse_name_list(input)?;
        let plates_known = flag(input, "known", "unknown")?;
        let infer = flag(input, "infer", "plain")?;
        Ok(TableSite { kind, name, observed, plates, plates_known, infer })
    }
}

impl Parse for Table {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let content;
        syn::braced!(content in input);
        content.parse::<kw::name>()?;
        content.parse::<Token![=]>()?;
        let name = content.parse()?;
        content.parse::<Token![,]>()?;
        let mut path = None;
        if content.peek(kw::path) {
            content.parse::<kw::path>()?;
            content.parse::<Token![=]>()?;
            path = Some(content.parse()?);
            content.parse::<Token![,]>()?;
        }
        content.parse::<kw::sites>()?;
        content.parse::<Token![=]>()?;
        let list;
        syn::bracketed!(list in content);
        let sites: Punctuated<TableSite, Token![,]> = Punctuated::parse_terminated(&list)?;
        content.parse::<Token![,]>()?;
        content.parse::<kw::helpers>()?;
        content.parse::<Token![=]>()?;
        let helpers = parse_name_list(&content)?;
        Ok(Table { name, path, sites: sites.into_iter().collect(), helpers })
    }
}
