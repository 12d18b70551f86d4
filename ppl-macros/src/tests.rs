//! Unit tests of the macro pipeline on token input: argument parsing, the body walker, the
//! checks and the suggestion rule (the compiled behaviour is covered by `ui-tests/`).

use crate::args::{SiteMacro, SiteName, parse_site};
use crate::check::{duplicates, edit_distance, model_guide, suggest};
use crate::errors::Errors;
use crate::sites::{Kind, Role, Site, Walker};
use crate::table::{Table, TableSite};
use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::visit_mut::VisitMut;

fn parse(mac: SiteMacro, tokens: TokenStream) -> syn::Result<crate::args::SiteCall> {
    parse_site(mac, tokens, Span::call_site())
}

fn err(mac: SiteMacro, tokens: TokenStream) -> String {
    match parse(mac, tokens) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

fn messages(errors: Errors) -> Vec<String> {
    errors.into_error().map(|e| e.into_iter().map(|e| e.to_string()).collect()).unwrap_or_default()
}

/// Walks a function body as `role` and returns the recorded sites and the errors.
fn walk(role: Role, body: TokenStream) -> (Vec<Site>, Vec<String>) {
    let mut block: syn::Block = syn::parse2(quote!({ #body })).unwrap();
    let krate: syn::Path = syn::parse_quote!(::ppl);
    let mut w = Walker::new(&krate, role, "f".into());
    w.visit_block_mut(&mut block);
    let mut errors = std::mem::take(&mut w.errors);
    duplicates("f", &w.sites, &mut errors);
    (w.sites, messages(errors))
}

fn table(name: &str, role: Role, body: TokenStream, helpers: &[&str]) -> Table {
    let (sites, errors) = walk(role, body);
    assert!(errors.is_empty(), "{errors:?}");
    Table {
        name: syn::Ident::new(name, Span::call_site()),
        path: None,
        sites: sites.iter().map(TableSite::from).collect(),
        helpers: helpers.iter().map(|h| syn::LitStr::new(h, Span::call_site())).collect(),
    }
}

fn check(model: TokenStream, guide: TokenStream) -> Vec<String> {
    let (m, g) = (table("m", Role::Model, model, &[]), table("g", Role::Guide, guide, &[]));
    let mut errors = Errors::new();
    model_guide(&m, &g, &mut errors);
    messages(errors)
}

#[test]
fn edit_distance_counts_insertions_substitutions_and_swaps() {
    assert_eq!(edit_distance("fairness", "fairnes"), 1);
    assert_eq!(edit_distance("loc", "lco"), 1);
    assert_eq!(edit_distance("scale", "sclae"), 1);
    assert_eq!(edit_distance("abc", "xyz"), 3);
    assert_eq!(edit_distance("", "ab"), 2);
}

#[test]
fn suggestions_follow_the_one_edit_per_three_characters_rule() {
    assert_eq!(suggest("fairnes", ["fairness", "obs"]), Some("fairness"));
    assert_eq!(suggest("z", ["x", "y"]), Some("x"), "one edit allowed below three characters");
    assert_eq!(suggest("abc", ["xyz"]), None);
    assert_eq!(suggest("Mu", ["mu", "m"]), Some("mu"), "case differences always qualify");
    assert_eq!(suggest("observed", ["obs", "mask", "enumerate", "infer"]), None);
    assert_eq!(suggest("constrant", ["constraint", "event_dim"]), Some("constraint"));
}

#[test]
fn parses_every_accepted_form() {
    let c = parse(SiteMacro::Sample, quote!("z", Normal::new(0.0, 1.0)?)).unwrap();
    assert!(matches!(c.name, SiteName::Literal(ref l) if l.value() == "z"));
    let c = parse(SiteMacro::Sample, quote!(format!("z_{i}"), d, obs = &x, mask = m, enumerate = parallel,)).unwrap();
    assert!(matches!(c.name, SiteName::Dynamic(_)));
    assert_eq!(c.kwargs.len(), 3);
    parse(SiteMacro::Sample, quote!("c", d, enumerate = "sequential", infer = cfg)).unwrap();
    parse(SiteMacro::Param, quote!("w", || Tensor::zeros(3, DType::F32, &dev), constraint = interval(0.0, 1.0))).unwrap();
    let c = parse(SiteMacro::Plate, quote!("data", n, subsample_size = 10, dim = -2, |idx| { Ok(()) })).unwrap();
    assert!(c.body.is_some());
    let c = parse(SiteMacro::Plate, quote!("t", n, sequential, |i| Ok(i))).unwrap();
    assert!(c.kw("sequential").is_some() && c.kw("sequential").unwrap().value.is_none());
    parse(SiteMacro::Factor, quote!("f", lw)).unwrap();
    parse(SiteMacro::Deterministic, quote!("d", &(a + b)?)).unwrap();
}

#[test]
fn malformed_input_gets_one_specific_message() {
    let e = err(SiteMacro::Sample, quote!(Normal::new(0.0, 1.0)?));
    assert!(e.starts_with("missing site name"), "{e}");
    let e = err(SiteMacro::Sample, quote!(d, "z"));
    assert!(e.starts_with("the site name must be the first argument"), "{e}");
    let e = err(SiteMacro::Sample, quote!("z"));
    assert!(e.starts_with("missing distribution after the site name"), "{e}");
    let e = err(SiteMacro::Sample, quote!("z", d, observed = x));
    assert!(e.contains("unknown argument `observed` for `sample!`; expected one of `obs`, `mask`, `enumerate`, `infer`"), "{e}");
    let e = err(SiteMacro::Sample, quote!("z", d, ob = x));
    assert!(e.ends_with("did you mean `obs`?"), "{e}");
    let e = err(SiteMacro::Sample, quote!("z", obs = x, d));
    assert!(e.starts_with("positional argument after keyword arguments"), "{e}");
    let e = err(SiteMacro::Sample, quote!("z", d, obs = x, obs = y));
    assert_eq!(e, "argument `obs` is given twice");
    let e = err(SiteMacro::Sample, quote!(obs = x));
    assert!(e.starts_with("missing site name"), "{e}");
    let e = err(SiteMacro::Sample, quote!(3, d));
    assert!(e.starts_with("a site name is a string literal"), "{e}");
    let e = err(SiteMacro::Sample, quote!("", d));
    assert_eq!(e, "a site name must not be empty");
    let e = err(SiteMacro::Sample, quote!("z", d, enumerate = everything));
    assert!(e.starts_with("expected `enumerate = parallel`"), "{e}");
    let e = err(SiteMacro::Sample, quote!("z", d, e));
    assert!(e.starts_with("unexpected argument"), "{e}");
    let e = err(SiteMacro::Factor, quote!("f", lw, scale = 2.0));
    assert!(e.starts_with("`factor!` takes no keyword arguments"), "{e}");
    let e = err(SiteMacro::Plate, quote!("p", n, |i| Ok(()), dim = -1));
    assert!(e.contains("must be the last argument"), "{e}");
    let e = err(SiteMacro::Plate, quote!("p", n));
    assert!(e.starts_with("missing body closure"), "{e}");
    let e = err(SiteMacro::Plate, quote!("p", |i| Ok(())));
    assert!(e.starts_with("missing plate size"), "{e}");
    let e = err(SiteMacro::Plate, quote!("p", n, sequential = true, |i| Ok(())));
    assert!(e.contains("`sequential` is a flag"), "{e}");
    let e = err(SiteMacro::Plate, quote!("p", n, sequential, dim = -1, |i| Ok(())));
    assert!(e.contains("no tensor `dim`"), "{e}");
    let e = err(SiteMacro::Plate, quote!("p", n, m, |i| Ok(())));
    assert!(e.starts_with("expected a keyword argument"), "{e}");
}

#[test]
fn walker_records_plates_branches_and_repetition() {
    let (sites, errors) = walk(
        Role::Model,
        quote! {
            let a = sample!("a", d);
            plate!("outer", n, |_| {
                plate!("inner", m, |_| { sample!("b", d, obs = x); Ok(()) })?;
                plate!(format!("dyn"), k, |_| { sample!("c", d); Ok(()) })
            })?;
            for i in 0..3 { sample!("d", d); }
            let f = |x| sample!("e", d);
            if c { sample!("g", d); } else { sample!("g", d2); }
            sample!(format!("h_{i}"), d);
        },
    );
    assert!(errors.is_empty(), "{errors:?}");
    let names: Vec<String> = sites.iter().map(|s| s.name.value()).collect();
    assert_eq!(names, ["a", "b", "c", "d", "e", "g", "g"], "dynamic names are not recorded");
    let plates: Vec<String> = sites[1].plates.iter().map(|p| p.value()).collect();
    assert_eq!(plates, ["outer", "inner"]);
    assert!(sites[1].obs.is_some() && sites[1].plates_known);
    assert!(!sites[2].plates_known, "a dynamic plate name makes the plates unknown");
    assert!(!sites[0].repeated && sites[3].repeated && sites[4].repeated);
    assert!(sites[5].exclusive_with(&sites[6]));
    assert!(sites.iter().all(|s| s.kind == Kind::Sample));
}

#[test]
fn duplicates_in_straight_line_code_are_errors_at_both_names() {
    let (_, errors) = walk(Role::Model, quote! { sample!("z", d); let w = param!("z", 1.0); });
    assert_eq!(errors.len(), 2);
    assert!(errors[0].starts_with("duplicate site `z` in `f`"), "{errors:?}");
    assert_eq!(errors[1], "site `z` first defined here");
    // Exclusive arms, loops and closures are not straight-line.
    let (_, errors) = walk(
        Role::Model,
        quote! {
            match k { 0 => sample!("z", a), 1 => sample!("z", b), _ => sample!("z", c) };
            for _ in 0..1 { sample!("y", d); }
            sample!("y", d);
        },
    );
    assert!(errors.is_empty(), "{errors:?}");
    // An `if` without `else` does not make a later site exclusive.
    let (_, errors) = walk(Role::Model, quote! { if c { sample!("z", a); } sample!("z", b); });
    assert_eq!(errors.len(), 2);
    // Sequential plate bodies run many times.
    let (_, errors) = walk(Role::Model, quote! { sample!("z", a); plate!("t", n, sequential, |i| { sample!("z", b); Ok(()) })?; });
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn a_guide_must_not_observe() {
    let (_, errors) = walk(Role::Guide, quote! { sample!("x", d, obs = y); });
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("guide `f` observes site `x`"), "{errors:?}");
    let (_, errors) = walk(Role::Model, quote! { sample!("x", d, obs = y); });
    assert!(errors.is_empty());
}

#[test]
fn model_guide_rules() {
    let model = quote! {
        let mu = sample!("mu", d);
        let w = param!("w", 0.0);
        plate!("data", n, |_| { sample!("z", d); sample!("x", d, obs = x); Ok(()) })?;
    };
    // A matching guide (guide params are free; guide deterministic sites are not checked).
    let ok = check(
        model.clone(),
        quote! { param!("q", 0.0); sample!("mu", d); deterministic!("aux", v); plate!("data", n, |_| { sample!("z", d); Ok(()) })?; },
    );
    assert!(ok.is_empty(), "{ok:?}");
    // 1 + 2: a typo yields both errors, each with the other spelling as suggestion.
    let e = check(model.clone(), quote! { sample!("mu", d); plate!("data", n, |_| { sample!("zz", d); Ok(()) })?; });
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("guide `g` has no site `z`, a latent `sample!` site of model `m`; did you mean `zz`?"), "{e:?}");
    assert_eq!(e[1], "guide `g` samples site `zz`, which model `m` does not have; did you mean `z`?");
    // 4: kinds differ.
    let e = check(model.clone(), quote! { param!("mu", 0.0); sample!("w", d); plate!("data", n, |_| { sample!("z", d); Ok(()) })?; });
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!(e[0], "site `mu` is a `param!` site in guide `g` but a `sample!` site in model `m`");
    assert_eq!(e[1], "site `w` is a `sample!` site in guide `g` but a `param!` site in model `m`");
    // 5: sampling an observed site.
    let e = check(model.clone(), quote! { sample!("mu", d); sample!("x", d); plate!("data", n, |_| { sample!("z", d); Ok(()) })?; });
    assert_eq!(e, ["site `x` is observed in model `m`, so guide `g` must not sample it"]);
    // 6: plates differ; unknown (dynamic) plates are not compared.
    let e = check(model.clone(), quote! { sample!("mu", d); plate!("batch", n, |_| { sample!("z", d); Ok(()) })?; });
    assert_eq!(
        e,
        ["site `z` lies in plate `data` in model `m` but in plate `batch` in guide `g`; a site must lie in the same plates in both"]
    );
    let e = check(model.clone(), quote! { sample!("mu", d); sample!("z", d); });
    assert_eq!(e.len(), 1);
    assert!(e[0].contains("lies in plate `data` in model `m` but in no plate in guide `g`"), "{e:?}");
    let e = check(model, quote! { sample!("mu", d); plate!(name, n, |_| { sample!("z", d); Ok(()) })?; });
    assert!(e.is_empty(), "{e:?}");
}

#[test]
fn helper_sites_are_exempt() {
    let m = table("m", Role::Model, quote! { sample!("a", d); sample!("b", d); }, &["c"]);
    let g = table("g", Role::Guide, quote! { sample!("a", d); sample!("c", d); }, &["b"]);
    let mut errors = Errors::new();
    model_guide(&m, &g, &mut errors);
    assert!(messages(errors).is_empty());
}

#[test]
fn enumerated_model_sites_and_auxiliary_guide_sites_are_exempt() {
    let e = check(
        quote! { sample!("c", d, enumerate = parallel); sample!("k", d, infer = cfg); sample!("mu", d); },
        quote! { sample!("mu", d); sample!("aux", d, infer = aux_cfg); },
    );
    assert!(e.is_empty(), "{e:?}");
    // Without the keyword both are errors.
    let e = check(quote! { sample!("c", d); }, quote! { sample!("aux", d); });
    assert_eq!(e.len(), 2, "{e:?}");
}
