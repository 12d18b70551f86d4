//! Code generation: site calls to the runtime's `*_with` primitives, the static site table of
//! an annotated function, and the hidden items of the model–guide check.

use crate::args::{KwArg, SiteCall, SiteMacro, SiteName, enumerate_variant};
use crate::sites::{Site, table_ident};
use crate::table::Table;
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, Ident};

/// Constraint constructors of `__private::constraint` that take no argument.
const CONSTRAINTS: &[&str] = &[
    "real",
    "positive",
    "nonnegative",
    "unit_interval",
    "simplex",
    "lower_cholesky",
    "corr_cholesky",
    "positive_definite",
    "ordered_vector",
    "boolean",
    "nonnegative_integer",
];
/// Constraint constructors that take arguments.
const CONSTRAINTS_WITH_ARGS: &[&str] = &["greater_than", "less_than", "interval", "integer_interval"];

/// 1-based line and column of `span` (zeros outside a macro invocation, e.g. in unit tests).
pub fn line_column(span: Span) -> (u32, u32) {
    if proc_macro::is_available() {
        let s = span.unwrap();
        (s.line() as u32, s.column() as u32)
    } else {
        (0, 0)
    }
}

/// `tokens` with every span set to `span`, so that a generated call lies wholly in user code
/// (rustc then reports errors about the call there, not at the attribute).
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let proc_macro2::TokenTree::Group(g) = &tt {
                let mut ng = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                ng.set_span(span);
                tt = proc_macro2::TokenTree::Group(ng);
            } else {
                tt.set_span(span);
            }
            tt
        })
        .collect()
}

/// `Some(tensor)` from an expression that is a `Tensor` or a `&Tensor`.
fn some_tensor(v: &Expr) -> TokenStream {
    quote_spanned! {v.span()=>
        ::core::option::Option::Some(::core::clone::Clone::clone(::core::borrow::Borrow::borrow(&(#v))))
    }
}

/// The observation `Option<Tensor>` from an expression that is a `Tensor`, a `&Tensor`, or an
/// `Option` of one (`None`: the site is latent), through the runtime's `ObsValue` trait.
fn obs_value(v: &Expr, p: &TokenStream) -> TokenStream {
    quote_spanned! {v.span()=> #p::ObsValue::obs_value(&(#v)) }
}

/// A `&Tensor` from an expression that is a `Tensor` or a `&Tensor`.
fn tensor_ref(v: &Expr) -> TokenStream {
    quote_spanned! {v.span()=> ::core::borrow::Borrow::borrow(&(#v)) }
}

fn kw_value<'a>(call: &'a SiteCall, key: &str) -> Option<&'a Expr> {
    call.kw(key).and_then(|k: &KwArg| k.value.as_ref())
}

/// `constraint = positive` / `interval(0.0, 1.0)` name constructors; anything else is a value.
fn constraint(v: &Expr, krate: &syn::Path) -> TokenStream {
    let known = |id: &Ident, list: &[&str]| list.iter().any(|c| id == c);
    match v {
        Expr::Path(p) if p.qself.is_none() => match p.path.get_ident() {
            Some(id) if known(id, CONSTRAINTS) => quote_spanned!(id.span()=> #krate::__private::constraint::#id()),
            Some(id) if known(id, CONSTRAINTS_WITH_ARGS) => syn::Error::new(
                id.span(),
                format!("constraint `{id}` takes arguments, e.g. `{id}(0.0, 1.0)`"),
            )
            .to_compile_error(),
            _ => quote!(#v),
        },
        Expr::Call(c) => match &*c.func {
            Expr::Path(p) if p.qself.is_none() => match p.path.get_ident() {
                Some(id) if known(id, CONSTRAINTS_WITH_ARGS) => {
                    let args = &c.args;
                    quote_spanned!(id.span()=> #krate::__private::constraint::#id(#args))
                }
                _ => quote!(#v),
            },
            _ => quote!(#v),
        },
        _ => quote!(#v),
    }
}

/// The expansion of one site macro; `meta` is the `Option<&'static SiteMeta>` expression.
pub fn site(call: &SiteCall, krate: &syn::Path, meta: Option<TokenStream>) -> TokenStream {
    // Located at the user's macro name (errors show there), resolved as macro output: lints
    // such as clippy's `needless_update` then treat the generated code as generated.
    let span = call.span.resolved_at(Span::mixed_site());
    let name = match &call.name {
        SiteName::Literal(l) => quote!(#l),
        SiteName::Dynamic(e) => quote!(#e),
    };
    let meta = meta.unwrap_or_else(|| quote!(::core::option::Option::None));
    let p = respan(quote!(#krate::__private), span);
    let arg = &call.arg;
    let some = |e: &Expr| quote_spanned!(e.span()=> ::core::option::Option::Some(#e));
    let none = quote!(::core::option::Option::None);
    match call.mac {
        SiteMacro::Sample => {
            let obs = kw_value(call, "obs").map_or(none.clone(), |v| obs_value(v, &p));
            let mask = kw_value(call, "mask").map_or(none.clone(), some_tensor);
            let infer_base = kw_value(call, "infer").map_or(quote!(::core::default::Default::default()), |e| quote!(#e));
            let infer = match kw_value(call, "enumerate") {
                Some(e) => {
                    let variant = enumerate_variant(e).unwrap_or_else(|_| Ident::new("Parallel", e.span()));
                    quote! { ::core::option::Option::Some({
                        let mut __ppl_infer: #p::InferConfig = #infer_base;
                        __ppl_infer.enumerate = ::core::option::Option::Some(#p::Enumerate::#variant);
                        __ppl_infer
                    }) }
                }
                None => kw_value(call, "infer").map_or(none.clone(), some),
            };
            quote_spanned! {span=>
                (#p::sample_with(#name, #arg, #p::SampleOptions {
                    obs: #obs, mask: #mask, infer: #infer, meta: #meta,
                }))?
            }
        }
        SiteMacro::Param => {
            let init = match arg {
                Expr::Closure(_) => quote_spanned!(arg.span()=> #p::ParamInit::lazy(#arg)),
                _ => quote!(#arg),
            };
            let constraint = kw_value(call, "constraint")
                .map_or(quote!(#p::constraint::real()), |c| constraint(c, krate));
            let event_dim = kw_value(call, "event_dim").map_or(none.clone(), some);
            quote_spanned! {span=>
                (#p::param_with(#name, #init, #p::ParamOptions {
                    constraint: #constraint, event_dim: #event_dim, meta: #meta,
                }))?
            }
        }
        SiteMacro::Factor => {
            let lw = tensor_ref(arg);
            quote_spanned!(span=> (#p::factor_with(#name, #lw, #meta))?)
        }
        SiteMacro::Deterministic => {
            let v = tensor_ref(arg);
            quote_spanned!(span=> (#p::deterministic_with(#name, #v, #meta))?)
        }
        SiteMacro::Plate => {
            let subsample_size = kw_value(call, "subsample_size").map_or(none.clone(), some);
            let subsample = kw_value(call, "subsample").map_or(none.clone(), some_tensor);
            let dim = kw_value(call, "dim").map_or(none.clone(), some);
            let body = &call.body;
            let f = if call.kw("sequential").is_some() { quote!(seq_plate_with) } else { quote!(plate_with) };
            let f = quote_spanned!(span=> #f);
            quote_spanned! {span=>
                #p::#f(#name, #arg, #p::PlateOptions {
                    subsample_size: #subsample_size, subsample: #subsample, dim: #dim, meta: #meta,
                }, #body)
            }
        }
    }
}

/// `Some(&STATIC_META)` for a literal plate named `name` inside the plates `outer`.
pub fn plate_meta(name: &syn::LitStr, outer: &[syn::LitStr], krate: &syn::Path) -> TokenStream {
    let p = quote!(#krate::__private);
    let lit = syn::LitStr::new(&name.value(), Span::call_site());
    let plates = outer.iter().map(|l| syn::LitStr::new(&l.value(), Span::call_site()));
    let (line, column) = line_column(name.span());
    quote! {
        ::core::option::Option::Some({
            static __PPL_PLATE: #p::SiteMeta = #p::SiteMeta {
                name: #lit,
                kind: #p::SiteKind::Plate,
                observed: false,
                plates: &[#(#plates),*],
                location: #p::Location { file: ::core::file!(), line: #line, column: #column },
            };
            &__PPL_PLATE
        })
    }
}

/// The `static __PPL_SITES: [SiteMeta; N]` statement put first in an annotated function body.
pub fn site_table(sites: &[Site], krate: &syn::Path) -> TokenStream {
    if sites.is_empty() {
        return TokenStream::new();
    }
    let p = quote!(#krate::__private);
    let n = sites.len();
    let entries = sites.iter().map(|s| {
        let name = syn::LitStr::new(&s.name.value(), Span::call_site());
        let kind = s.kind.variant();
        // As in Pyro (and the runtime), a factor is an observed site.
        let observed = s.obs.is_some() || s.kind == crate::sites::Kind::Factor;
        let plates = s.plates.iter().map(|l| syn::LitStr::new(&l.value(), Span::call_site()));
        let (line, column) = line_column(s.name.span());
        quote! {
            #p::SiteMeta {
                name: #name,
                kind: #p::SiteKind::#kind,
                observed: #observed,
                plates: &[#(#plates),*],
                location: #p::Location { file: ::core::file!(), line: #line, column: #column },
            }
        }
    });
    let table = table_ident();
    quote! {
        #[allow(clippy::all)]
        static #table: [#p::SiteMeta; #n] = [#(#entries),*];
    }
}

/// The hidden name of a model's table macro.
pub fn table_macro_ident(model: &Ident) -> Ident {
    format_ident!("__ppl_model_{}", model, span = model.span())
}

/// The hidden `macro_rules!` a model emits beside itself, re-exported with the function's
/// visibility (capped at `pub(crate)`: a macro-expanded `macro_rules!` cannot be `pub`).
pub fn model_table_macro(table: &Table, vis: &syn::Visibility, krate: &syn::Path) -> TokenStream {
    let mac = table_macro_ident(&table.name);
    let vis = match vis {
        syn::Visibility::Public(p) => quote_spanned!(p.span=> pub(crate)),
        v => quote!(#v),
    };
    quote! {
        #[doc(hidden)]
        #[allow(unused_macros, non_snake_case)]
        macro_rules! #mac {
            ($($__ppl_guide:tt)*) => {
                #[#krate::guide(__ppl_check(model = #table, $($__ppl_guide)*))]
                const _: () = ();
            };
        }
        #[doc(hidden)]
        #[allow(unused_imports)]
        #vis use #mac;
    }
}

/// The invocation of the model's table macro that a `#[guide(model = path)]` emits.
pub fn guide_check_call(model_path: &syn::Path, table: &Table) -> TokenStream {
    let mut mac_path = model_path.clone();
    if let Some(last) = mac_path.segments.last_mut() {
        last.ident = table_macro_ident(&last.ident);
    }
    quote! { #mac_path! { guide = #table } }
}
