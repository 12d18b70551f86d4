//! Procedural macros of ppl: `#[model]`, `#[guide]` and the site macros `sample!`, `param!`,
//! `plate!`, `factor!`, `deterministic!`. Use them through the facade crate `ppl`.
//!
//! ```ignore
//! use ppl::prelude::*;
//!
//! #[model]
//! fn coin(flips: &Tensor) -> Result<()> {
//!     let f = sample!("fairness", Beta::new(10.0, 10.0)?);
//!     plate!("flips", flips.dim(0)?, |_| {
//!         sample!("obs", Bernoulli::new(&f)?, obs = flips);
//!         Ok(())
//!     })
//! }
//!
//! #[guide(model = coin)] // compile error if `coin` has a latent site this guide lacks
//! fn coin_guide(flips: &Tensor) -> Result<()> {
//!     let a = param!("alpha_q", 15.0, constraint = positive);
//!     let b = param!("beta_q", 15.0, constraint = positive);
//!     sample!("fairness", Beta::new(&a, &b)?);
//!     Ok(())
//! }
//! ```
//! (The examples of this crate are compiled by `tests/ui_pass/` and `tests/macros.rs`, as a
//! proc-macro crate cannot depend on the facade that re-exports it.)
//!
//! Pipeline: parse ([`args`], [`attr`]) → IR ([`sites`], [`table`]) → validate ([`check`]) →
//! expand ([`expand`]). Every problem of one invocation is reported in one build, with the
//! user's function emitted alongside so that callers see no secondary errors.

mod args;
mod attr;
mod check;
mod errors;
mod expand;
mod sites;
mod table;
#[cfg(test)]
mod tests;

use args::{SiteMacro, parse_site};
use attr::{AttrInput, FnArgs, parse_attr};
use errors::Errors;
use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::quote;
use sites::{Role, Walker};
use syn::visit_mut::VisitMut;
use table::{Table, TableSite};

/// Marks a model: records its literal sites (for error locations and for guides that name it)
/// and rejects duplicate literal site names. The function itself is unchanged.
///
/// `#[model(crate = path)]` names the `ppl` crate if it is not `::ppl`;
/// `#[model(helper_sites = ["z"])]` lists sites that helper functions contribute.
#[proc_macro_attribute]
pub fn model(attr: TokenStream, item: TokenStream) -> TokenStream {
    annotate(Role::Model, attr.into(), item.into()).into()
}

/// Marks a guide; `#[guide(model = path::to::model)]` also checks it against the model at
/// compile time (every latent model site present, no extra or observed sites, same kinds and
/// plates). Accepts `crate = path` and `helper_sites = [..]` as `#[model]` does.
#[proc_macro_attribute]
pub fn guide(attr: TokenStream, item: TokenStream) -> TokenStream {
    annotate(Role::Guide, attr.into(), item.into()).into()
}

/// `sample!("z", dist)`, `sample!("x", dist, obs = &data)`: a random variable; evaluates to its
/// value (`?` applied). Keyword arguments: `obs` (a `Tensor`, a `&Tensor`, or an `Option` of
/// one: `None` leaves the site latent, Pyro's `obs=None`; the compile-time check counts the site
/// as observed either way), `mask` (a u8 0/1 tensor), `enumerate = parallel|sequential`, `infer`
/// (an `InferConfig`, e.g. `InferConfig::new().reparameterize(false)`).
#[proc_macro]
pub fn sample(input: TokenStream) -> TokenStream {
    standalone(SiteMacro::Sample, input)
}

/// `param!("w", init)`, `param!("s", init, constraint = positive, event_dim = 1)`: a learnable
/// parameter; `init` is a number, a tensor, or a closure run only on first use.
#[proc_macro]
pub fn param(input: TokenStream) -> TokenStream {
    standalone(SiteMacro::Param, input)
}

/// `plate!("data", n, |idx| { ... })` with optional `subsample_size = b`, `subsample = &idx`,
/// `dim = -2` or the flag `sequential` before the closure; evaluates to the body's `Result`.
#[proc_macro]
pub fn plate(input: TokenStream) -> TokenStream {
    standalone(SiteMacro::Plate, input)
}

/// `factor!("name", log_weight)`: adds a log-weight to the joint density.
#[proc_macro]
pub fn factor(input: TokenStream) -> TokenStream {
    standalone(SiteMacro::Factor, input)
}

/// `deterministic!("name", value)`: records a named function of other sites; evaluates to it.
#[proc_macro]
pub fn deterministic(input: TokenStream) -> TokenStream {
    standalone(SiteMacro::Deterministic, input)
}

/// A site macro outside `#[model]`/`#[guide]` (or one they could not parse): expands without
/// static metadata, or to its errors.
fn standalone(mac: SiteMacro, input: TokenStream) -> TokenStream {
    let krate: syn::Path = syn::parse_quote!(::ppl);
    match parse_site(mac, input.into(), proc_macro2::Span::call_site()) {
        Ok(call) => expand::site(&call, &krate, None).into(),
        Err(e) => errors::error_expr(e).into(),
    }
}

fn annotate(role: Role, attr: TokenStream2, item: TokenStream2) -> TokenStream2 {
    let mut errors = Errors::new();
    let args = match parse_attr(role, attr) {
        Ok(AttrInput::Check { model, guide }) => {
            check::model_guide(&model, &guide, &mut errors);
            return errors.to_compile_errors();
        }
        Ok(AttrInput::Function(args)) => args,
        Err(e) => {
            errors.push(e);
            FnArgs::default()
        }
    };
    let mut f: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(_) => {
            let which = if role == Role::Model { "#[model]" } else { "#[guide]" };
            errors.error_spanned(&item, format!("`{which}` applies to a function with a body"));
            let errs = errors.to_compile_errors();
            return quote! { #errs #item };
        }
    };
    let krate = args.krate.clone().unwrap_or_else(|| syn::parse_quote!(::ppl));
    let name = f.sig.ident.clone();
    let mut walker = Walker::new(&krate, role, name.to_string());
    walker.visit_block_mut(&mut f.block);
    check::duplicates(&name.to_string(), &walker.sites, &mut walker.errors);
    if let Some(e) = std::mem::take(&mut walker.errors).into_error() {
        errors.push(e);
    }
    let table_stmt = expand::site_table(&walker.sites, &krate);
    if !table_stmt.is_empty() {
        f.block.stmts.insert(0, syn::Stmt::Item(syn::Item::Verbatim(table_stmt)));
    }
    let table = Table {
        name: name.clone(),
        path: args.model.clone(),
        sites: walker.sites.iter().map(TableSite::from).collect(),
        helpers: args.helpers.clone(),
    };
    // A method's table macro could not live in its `impl` block: methods are outside the check.
    let hidden = match (role, &args.model) {
        (Role::Model, _) if f.sig.receiver().is_none() => expand::model_table_macro(&table, &f.vis, &krate),
        (Role::Guide, Some(path)) => expand::guide_check_call(path, &table),
        _ => TokenStream2::new(),
    };
    let errs = errors.to_compile_errors();
    quote! { #f #hidden #errs }
}
